import { ETCD_FLAGS_HELP } from './etcd-flags.js';

/** Usage text of every command. */
export const USAGE: Readonly<Record<string, string>> = {
  main: `Usage: meridian <command> [options]

Commands:
  start      run the router (proxy and admin listeners)
  demo       run the router with small local demo regions beside it
  validate   check a routing table or static configuration file
  apply      write a routing table file to etcd in one transaction
  get        print the routing objects in etcd
  weights    set the split weights of a service in etcd
  drain      drain a region or an endpoint (undrain: the reverse)
  status     the fleet: every running node's view of endpoint health

Run "meridian <command> --help" for the options of a command.
`,
  start: `Usage: meridian start [--config FILE] [options]

Runs the router. Flags override the configuration file.

Options:
  -c, --config FILE        static configuration (YAML or JSON)
      --listen ADDR        proxy listener, host:port            (proxy.listen)
      --admin ADDR         admin listener, host:port            (admin.listen)
      --routes FILE        routing table file, watched          (store.file)
      --etcd URL[,URL]     etcd endpoints                       (store.etcd.endpoints)
      --etcd-prefix P      etcd key prefix                      (store.etcd.prefix)
      --dns-listen ADDR    GeoDNS listener                      (dns.listen)
      --tls-listen ADDR    HTTPS listener                       (proxy.tls.listen)
      --node-name NAME     this node's name                     (node.name)
      --region NAME        region this node sits in             (node.region)
      --workers N|auto     data-plane worker processes          (proxy.workers)
      --access-log WHERE   off|stdout|PATH: a JSON line per request (log.access; default off)
      --log-level LEVEL    fatal|error|warn|info|debug|trace|silent (log.level; default info)
  -h, --help               show this help

SIGTERM or SIGINT stops gracefully: readyz turns 503, requests in flight finish.
SIGUSR1 opens the access log file again (after logrotate moved it).
MERIDIAN_LOG_FORMAT=auto|json|pretty overrides log.format (auto: pretty on a terminal).
`,
  demo: `Usage: meridian demo [--config FILE] [options]

Like "meridian start", and also starts a small HTTP server for every loopback
endpoint of the routing table, answering with its region and version, so the
router can be tried without any real upstream. A certificate of proxy.tls whose
files are both missing is made self-signed for localhost, so HTTPS works at once.
The access log goes to stdout unless log.access or --access-log says otherwise.
Takes the options of "start".
`,
  validate: `Usage: meridian validate FILE [--kind routes|config]

Checks a routing table (regions, services, routes) or a static configuration
file (node, proxy, admin, ...; the routing file it names is checked too).
The kind is detected from the file's top-level keys unless --kind is given.
Exit 0 when valid; 1 with every problem printed as "path: message".
`,
  apply: `Usage: meridian apply -f FILE [--prune] [--dry-run] [etcd options]

Validates the whole routing table FILE (YAML or JSON), then writes every object
that differs from etcd in one transaction, which fails (writing nothing) if any
of those keys changed since they were read. Prints what changed.

Options:
  -f, --file FILE          the routing table to apply
      --prune              also delete objects in etcd that FILE does not have
      --dry-run            print what would change; write nothing
${ETCD_FLAGS_HELP}`,
  get: `Usage: meridian get [regions|services|routes] [NAME] [etcd options]

Prints the routing objects stored in etcd as JSON: all of them, one kind, or one object.

Options:
${ETCD_FLAGS_HELP}`,
  weights: `Usage: meridian weights SERVICE VERSION=WEIGHT ... [etcd options]

Sets the split weights of the named versions of SERVICE (others keep theirs),
with compare-and-swap: a concurrent edit is retried on top of, never overwritten.
Blue-green flip: meridian weights web blue=0 green=100

Options:
${ETCD_FLAGS_HELP}`,
  drain: `Usage: meridian drain|undrain region|endpoint NAME [etcd options]

Drains (or undrains) a region, or an endpoint address (host:port) in every
service that lists it. Drained targets get no new requests; requests in flight finish.

Options:
${ETCD_FLAGS_HELP}`,
  status: `Usage: meridian status [--json] [etcd options]

Shows the fleet: every running Meridian node publishes its view of endpoint
health to <prefix>nodes/<node> under a 15 s lease, so a node that died drops out.

Options:
      --json               print the views as JSON
${ETCD_FLAGS_HELP}`,
};
