import { ETCD_FLAGS_HELP } from './etcd-flags.js';
import { OUTPUT_FLAG_HELP } from './output.js';

/** Usage text of every command. */
export const USAGE: Readonly<Record<string, string>> = {
  main: `Usage: meridian <command> [options]
       meridian --version | -v

Commands:
  start      run the router (proxy and admin listeners)
  demo       run the router with small local demo regions beside it
  validate   check a routing table or static configuration file
  apply      write a routing table file to etcd in one transaction
  get        print the routing objects in etcd (-o json|yaml|table)
  weights    set the split weights of a service in etcd
  drain      drain a region or an endpoint
  undrain    undrain a region or an endpoint
  status     the fleet: nodes, drained targets, endpoints down (-o json|yaml|table)
  rollout    canary and blue-green rollouts: start, status, pause, resume, promote, abort
  ready      exit 0 when a running node's /readyz answers 200 (container and exec probes)

Global options:
  -h, --help               show help (of a command: meridian <command> --help)
  -v, --version            print the version of meridian and of node
      --debug              on failure, print the stack too (also MERIDIAN_DEBUG=1)

Environment (commands that talk to etcd; flags win over them):
  MERIDIAN_ETCD_ENDPOINTS  etcd endpoints, comma-separated (before ETCDCTL_ENDPOINTS
                           and store.etcd of --config; default http://127.0.0.1:2379)
  ETCDCTL_ENDPOINTS        used when MERIDIAN_ETCD_ENDPOINTS is not set, as etcdctl does
  MERIDIAN_ETCD_PREFIX     etcd key prefix (default /meridian/)
  MERIDIAN_DEBUG=1         like --debug
  MERIDIAN_LOG_LEVEL       log level of start and demo (default info)
  MERIDIAN_ADMIN_TOKEN     admin.token of start, demo and --config (keeps it out of files)

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
Takes the options of "start", and:
      --regions FILE       the routing table file whose loopback endpoints get demo
                           servers (default: the routes file in use). With --etcd
                           the table comes from etcd, so name one here, e.g.
                           meridian demo --etcd URL --regions config/routes.yaml
                           then meridian apply -f config/routes.yaml
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
  get: `Usage: meridian get [KIND] [NAME] [-o json|yaml|table] [etcd options]

Prints the routing objects stored in etcd: all of them, one kind, or one object.
KIND is region(s), service(s) (or svc) or route(s). A table shows what each
object does (service VERSIONS as name=weight); an object that does not
validate is shown as invalid, with the reason.

Options:
${OUTPUT_FLAG_HELP}${ETCD_FLAGS_HELP}`,
  weights: `Usage: meridian weights SERVICE VERSION=WEIGHT ... [-o json|yaml] [etcd options]

Sets the split weights of the named versions of SERVICE (others keep theirs),
with compare-and-swap: a concurrent edit is retried on top of, never overwritten.
Blue-green flip: meridian weights web blue=0 green=100

Options:
  -o, --output FORMAT      print the result as json or yaml (default: one line)
${ETCD_FLAGS_HELP}`,
  rollout: `Usage: meridian rollout start SERVICE --to VERSION [--from VERSION] [--steps 1,5,25,50,100]
                 [--hold 5m] [--min-requests 100] [--max-error-ratio 2] [--max-error-rate 0.05]
                 [--max-latency-ratio 1.5] [--latency-margin 10ms] [--per-region] [etcd options]
       meridian rollout status SERVICE [-o json|yaml|table] [etcd options]
       meridian rollout pause|resume|promote|abort SERVICE [etcd options]

A rollout moves SERVICE's split from one version to another in steps (the
to-version's percent; blue-green: --steps 100). Each step holds for --hold and
needs --min-requests to the to-version before its gates are judged: the
to-version's error rate (5xx and Meridian's own errors) at most --max-error-ratio
times the from-version's and at most --max-error-rate, its p99 at most
--max-latency-ratio times the from-version's (or within --latency-margin of it).
A failed gate rolls back to the from-version at once. The rollout is stored at
<prefix>rollouts/SERVICE; every command writes it (and the service's weights,
when they move) in one compare-and-swap transaction.

  start     write the rollout and give the to-version its first step's weight
            (--from defaults to the version holding the most weight now)
  status    state, step, time left in the step, the baseline, the last transitions
  pause     keep the weights where they are; nothing advances or rolls back
  resume    the step's weights again, and the step starts over (its hold from now)
  promote   skip to the end: the to-version takes 100 %
  abort     roll back: the from-version takes 100 %

Options:
${OUTPUT_FLAG_HELP}${ETCD_FLAGS_HELP}`,
  drain: `Usage: meridian drain|undrain region|endpoint NAME [etcd options]
       (regions and endpoints are accepted too)

Drains (or undrains) a region, or an endpoint address (host:port) in every
service that lists it. Drained targets get no new requests; requests in flight finish.

Options:
${ETCD_FLAGS_HELP}`,
  ready: `Usage: meridian ready [--config FILE] [--admin ADDR] [--timeout DURATION]

Asks a running node whether it is ready: GET /readyz on its admin listener,
read from the static configuration's admin.listen (or --admin; a wildcard
0.0.0.0 or :: is reached on 127.0.0.1 or ::1). Exit 0 when it answers 200;
1 otherwise, with one line saying why (not ready and the reason, no answer,
a configuration it cannot read). For a container HEALTHCHECK, Kubernetes exec
probes and scripts.

Options:
  -c, --config FILE        static configuration whose admin.listen to probe
      --admin ADDR         admin listener, host:port (default 127.0.0.1:9901)
      --timeout DURATION   how long to wait for the answer (default 2s)
`,
  status: `Usage: meridian status [-o json|yaml|table] [etcd options]

Shows the fleet: every running Meridian node publishes its view of endpoint
health to <prefix>nodes/<node> under a 15 s lease, so a node that died drops out.
The table lists the nodes, then the drained regions and endpoints, then the
endpoints a node sees down, each by service, version, region and address.
JSON and YAML hold the nodes' views as published, with "drained" and "down".

Options:
${OUTPUT_FLAG_HELP}      --json               the same as -o json
${ETCD_FLAGS_HELP}`,
};
