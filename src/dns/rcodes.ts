/** DNS response codes Meridian answers with (RFC 1035 4.1.1, RFC 6891 9), and their names for metrics. */

export const RCODE_NOERROR = 0;
export const RCODE_FORMERR = 1;
export const RCODE_SERVFAIL = 2;
export const RCODE_NXDOMAIN = 3;
export const RCODE_NOTIMP = 4;
export const RCODE_REFUSED = 5;
/** Extended rcode (upper bits carried in the OPT record): the query's EDNS version is not supported. */
export const RCODE_BADVERS = 16;

/** The mnemonic of each rcode, as metric labels show it. */
export const RCODE_NAMES: Readonly<Record<number, string>> = {
  [RCODE_NOERROR]: 'NOERROR',
  [RCODE_FORMERR]: 'FORMERR',
  [RCODE_SERVFAIL]: 'SERVFAIL',
  [RCODE_NXDOMAIN]: 'NXDOMAIN',
  [RCODE_NOTIMP]: 'NOTIMP',
  [RCODE_REFUSED]: 'REFUSED',
  [RCODE_BADVERS]: 'BADVERS',
};
