package config

// DefaultFile is the commented configuration that
// "steady agent --print-default-config" prints. Every value in it is the
// default; a test checks that it parses to Default().
const DefaultFile = `# steady agent configuration (/etc/steady/steady.yaml).
# Every key is optional except version; the values below are the defaults.
# Unknown keys are errors. The agent reads this file once at start.
version: 1

node:
  # Name of this node in the cluster. Empty: the host name.
  name: ""

# Node-local state: event journal, embedded store, process tags.
data_dir: /var/lib/steady

log:
  level: info     # debug, info, warn, error
  format: text    # text or json (also --log-format)

api:
  # Local API socket, mode 0660. The CLI finds it here, or through
  # STEADY_SOCKET or --socket.
  socket: /run/steady/steady.sock
  # Group that owns the socket, when the group exists.
  socket_group: steady
  # Members of admin_group (and root) may change things; members of
  # read_group (and the agent's own user) may read. Everyone else gets 403.
  admin_group: steady-admin
  read_group: steady
  # Serve Prometheus metrics over plain HTTP on this TCP address as well as
  # on the socket (e.g. 127.0.0.1:9464). Empty: socket only.
  metrics_address: ""

store:
  # Raft heartbeat and election timeout of the embedded etcd. Below ~300ms
  # of election timeout, scheduling stalls on busy VMs cause flapping.
  heartbeat: 50ms
  election: 500ms
  # etcd backend quota.
  quota_bytes: 2GiB
  # How long the agent waits for the store before giving up at start.
  start_timeout: 30s
  # An existing etcd cluster to use instead of the embedded member:
  # client URLs such as https://10.0.0.5:2379, and the PEM files of the
  # connection (the CA of the servers' certificates; a client certificate
  # and key when the servers ask for one). Empty: embedded.
  endpoints: []
  tls:
    ca_file: ""
    cert_file: ""
    key_file: ""

events:
  # Journal retention: the oldest segments are removed when the journal
  # is larger than max_bytes or their newest event is older than max_age.
  max_bytes: 256MiB
  max_age: 720h
  segment_bytes: 16MiB
  # Script subscribers: one run may take this long before it is killed;
  # a failed run is retried this many times (with backoff) before the
  # event is skipped for that subscriber.
  subscriber_timeout: 1m0s
  subscriber_retries: 5

uevents:
  # Publish kernel uevents (NETLINK_KOBJECT_UEVENT) as EC_dev events.
  enabled: true
  receive_buffer: 8MiB

pmf:
  # How the process monitor tracks a tag's processes: auto (a cgroup v2 per
  # tag when the unified hierarchy is writable, else process-group),
  # cgroup (required), or process-group (the agent as child subreaper,
  # process groups and an environment marker).
  mode: auto
  # steady's cgroup under the cgroup v2 mount; tags go below CGROUP/pmf.
  cgroup: steady
  # An action program (pmfadm -a) is killed after this long.
  action_timeout: 1m0s

rgm:
  # OCF_ROOT: OCF agents are found as OCF_ROOT/resource.d/PROVIDER/AGENT.
  ocf_root: /usr/lib/ocf
  # A method that outlives its timeout gets SIGABRT, then SIGKILL this
  # much later.
  kill_grace: 5s
  # When a stop method fails under Failover_mode HARD, the node fences
  # itself (its groups are killed and move); then this runs: "reboot", or
  # a shell command (with STEADY_NODE, STEADY_RESOURCE and
  # STEADY_RESOURCE_GROUP set). Empty: nothing more.
  fence_action: ""

cluster:
  # Every keepalive the node writes a heartbeat to the store (and every
  # fourth it renews its lease, which keeps its liveness record).
  keepalive: 100ms
  # A node that has had no heartbeat confirmed for fence_after (counted
  # from when it was sent) freezes its failover work, within stop_budget.
  # The others declare it down, and take its groups over, once they have
  # seen no heartbeat of it for fence_after (plus 0.2% clock drift) plus
  # stop_budget: 901ms with these values.
  fence_after: 600ms
  stop_budget: 300ms
  # The lease (whole seconds) must outlive that: fence_after plus 0.1%
  # plus stop_budget must fit in lease_ttl.
  lease_ttl: 2s

dr:
  # The sysfs tree attachment points are read from and changed in. Only
  # tests and benchmarks point it at a synthetic tree.
  sysfs_root: /sys

rcm:
  # RCM scripts (rcmscript v1) are loaded from these directories; a name
  # found in an earlier one hides the same name in a later one.
  script_dirs:
    - /etc/steady/rcm/scripts
    - /etc/rcm/scripts
  # A memory block may go only if this much memory stays available.
  memory_margin: 256MiB
  # A script command that outlives its rcm_cmd_timeout gets SIGABRT,
  # then SIGKILL this much later.
  kill_grace: 10s

ipmp:
  # Probe-based detection finds a failed interface within this time (a
  # probe every seventh of it; five lost in a row fail the interface, ten
  # answered repair it). At least 100ms.
  failure_detection_time: 10s
  # Move data addresses back to an interface once it is repaired.
  failback: true
  # Solaris hostname.<if> and hostname6.<if> files with the IPMP syntax
  # found here are read as further groups. Empty: none are read.
  hostname_dir: /etc
  # A moved address is announced (gratuitous ARP, unsolicited neighbour
  # advertisement) arp_count times, arp_interval apart.
  arp_count: 5
  arp_interval: 2s
  # Groups of interfaces on one link, for example:
  #   - name: g0
  #     interfaces:
  #       - name: eth1
  #         test_addresses: [192.0.2.21/24]
  #         data_addresses: [192.0.2.100/24]
  #       - name: eth2
  #         test_addresses: [192.0.2.22/24]
  #         test_link_local: false
  #         standby: true
  groups: []
`
