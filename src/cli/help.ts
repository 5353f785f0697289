/** Usage text of every command. */
export const USAGE: Readonly<Record<string, string>> = {
  main: `Usage: meridian <command> [options]

Commands:
  start      run the router (proxy and admin listeners)
  demo       run the router with small local demo regions beside it
  validate   check a routing table or static configuration file

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
      --node-name NAME     this node's name                     (node.name)
      --region NAME        region this node sits in             (node.region)
      --log-level LEVEL    fatal|error|warn|info|debug|trace|silent (default info)
  -h, --help               show this help

SIGTERM or SIGINT stops gracefully: readyz turns 503, requests in flight finish.
`,
  demo: `Usage: meridian demo [--config FILE] [options]

Like "meridian start", and also starts a small HTTP server for every loopback
endpoint of the routing table, answering with its region and version, so the
router can be tried without any real upstream. Takes the options of "start".
`,
  validate: `Usage: meridian validate FILE [--kind routes|config]

Checks a routing table (regions, services, routes) or a static configuration
file (node, proxy, admin, ...; the routing file it names is checked too).
The kind is detected from the file's top-level keys unless --kind is given.
Exit 0 when valid; 1 with every problem printed as "path: message".
`,
};
