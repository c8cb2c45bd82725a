// Package config reads and validates the agent's configuration file, one
// versioned YAML document (default /etc/steady/steady.yaml).
//
// Decoding is strict: an unknown or misspelt key, a value of the wrong type
// and every failed validation rule is reported with the file, line and key,
// and all problems are reported together. The agent validates the whole
// configuration before it starts anything, and never changes it while it
// runs: a Config is a plain value that its users copy or read.
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// CurrentVersion is the configuration format this steady reads and writes.
const CurrentVersion = 1

// Config is the whole agent configuration.
type Config struct {
	Version int     `yaml:"version"`
	Node    Node    `yaml:"node"`
	DataDir string  `yaml:"data_dir"`
	Log     Log     `yaml:"log"`
	API     API     `yaml:"api"`
	Store   Store   `yaml:"store"`
	Events  Events  `yaml:"events"`
	Uevents Uevents `yaml:"uevents"`
	PMF     PMF     `yaml:"pmf"`
	RGM     RGM     `yaml:"rgm"`
	Cluster Cluster `yaml:"cluster"`
	DR      DR      `yaml:"dr"`
	RCM     RCM     `yaml:"rcm"`
	IPMP    IPMP    `yaml:"ipmp"`
}

// IPMP configures IP multipathing (in.mpathd's /etc/default/mpathd and
// the groups).
type IPMP struct {
	// FailureDetectionTime is the time probe-based detection has to find
	// a failed interface (a probe every seventh of it).
	FailureDetectionTime Duration `yaml:"failure_detection_time"`
	// Failback moves data addresses back to a repaired interface.
	Failback bool `yaml:"failback"`
	// HostnameDir holds Solaris hostname.<if> files with the IPMP syntax,
	// read as further groups; empty: none are read.
	HostnameDir string `yaml:"hostname_dir"`
	// ARPCount announcements of a moved address, ARPInterval apart.
	ARPCount    int         `yaml:"arp_count"`
	ARPInterval Duration    `yaml:"arp_interval"`
	Groups      []IPMPGroup `yaml:"groups"`
}

// IPMPGroup is one multipathing group.
type IPMPGroup struct {
	Name       string          `yaml:"name"`
	Interfaces []IPMPInterface `yaml:"interfaces"`
}

// IPMPInterface is one member of a group.
type IPMPInterface struct {
	Name string `yaml:"name"`
	// Standby holds it in reserve (test addresses only).
	Standby bool `yaml:"standby"`
	// TestAddresses stay on the interface; DataAddresses move.
	TestAddresses []string `yaml:"test_addresses"`
	DataAddresses []string `yaml:"data_addresses"`
	// TestLinkLocal probes over IPv6 from the interface's link-local
	// address.
	TestLinkLocal bool `yaml:"test_link_local"`
}

// Cluster configures membership: the node's lease and self-fencing.
type Cluster struct {
	// LeaseTTL is the life of the node's lease at the store without a
	// renewal (whole seconds); the lease keeps the liveness record.
	LeaseTTL Duration `yaml:"lease_ttl"`
	// Keepalive is the interval of heartbeats (and, every fourth, of
	// lease renewals).
	Keepalive Duration `yaml:"keepalive"`
	// FenceAfter is how long after the newest confirmed heartbeat was
	// sent the node freezes its failover work.
	FenceAfter Duration `yaml:"fence_after"`
	// StopBudget is the time freezing failover work may take; the others
	// wait FenceAfter (with drift) plus StopBudget before they take over.
	StopBudget Duration `yaml:"stop_budget"`
}

// DR configures dynamic reconfiguration.
type DR struct {
	// SysfsRoot is the sysfs tree attachment points are read from and
	// changed in: /sys, or a synthetic tree for tests and benchmarks.
	SysfsRoot string `yaml:"sysfs_root"`
}

// RCM configures the reconfiguration coordination manager.
type RCM struct {
	// ScriptDirs are searched for RCM scripts, the first one winning for
	// a name found in several.
	ScriptDirs []string `yaml:"script_dirs"`
	// MemoryMargin is the available memory a memory block's removal must
	// leave.
	MemoryMargin Size `yaml:"memory_margin"`
	// KillGrace is the time a script that ran out of time gets between
	// SIGABRT and SIGKILL.
	KillGrace Duration `yaml:"kill_grace"`
}

// Node names this node.
type Node struct {
	// Name is the node's name in the cluster; empty means the host name.
	Name string `yaml:"name"`
}

// Log selects the agent's log output.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// API configures the local socket and the metrics listener.
type API struct {
	Socket string `yaml:"socket"`
	// SocketGroup owns the socket (mode 0660) when that group exists.
	SocketGroup string `yaml:"socket_group"`
	// AdminGroup's members may change things; ReadGroup's members may read.
	AdminGroup string `yaml:"admin_group"`
	ReadGroup  string `yaml:"read_group"`
	// MetricsAddress, when set, serves /metrics over plain HTTP on TCP.
	MetricsAddress string `yaml:"metrics_address"`
}

// Store configures the embedded etcd member.
type Store struct {
	Heartbeat Duration `yaml:"heartbeat"`
	Election  Duration `yaml:"election"`
	// QuotaBytes is etcd's backend quota.
	QuotaBytes Size `yaml:"quota_bytes"`
	// StartTimeout bounds how long the agent waits for the store to serve.
	StartTimeout Duration `yaml:"start_timeout"`
	// Endpoints, when set, name an existing etcd cluster (https:// or
	// http:// URLs) that holds the state instead of an embedded member.
	Endpoints []string `yaml:"endpoints"`
	// TLS secures the connection to Endpoints.
	TLS StoreTLS `yaml:"tls"`
}

// StoreTLS are the PEM files of the connection to an external etcd.
type StoreTLS struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Events configures the journal and the script subscribers.
type Events struct {
	MaxBytes          Size     `yaml:"max_bytes"`
	MaxAge            Duration `yaml:"max_age"`
	SegmentBytes      Size     `yaml:"segment_bytes"`
	SubscriberTimeout Duration `yaml:"subscriber_timeout"`
	SubscriberRetries int      `yaml:"subscriber_retries"`
}

// Uevents configures the kernel uevent listener.
type Uevents struct {
	Enabled bool `yaml:"enabled"`
	// ReceiveBuffer is the socket buffer asked of the kernel; a bigger one
	// loses fewer events in bursts.
	ReceiveBuffer Size `yaml:"receive_buffer"`
}

// PMF configures the process monitor.
type PMF struct {
	// Mode is auto (cgroup v2 when writable), cgroup, or process-group.
	Mode string `yaml:"mode"`
	// Cgroup is steady's cgroup under the cgroup v2 mount; each tag gets
	// one below Cgroup/pmf.
	Cgroup string `yaml:"cgroup"`
	// ActionTimeout bounds an action program (pmfadm -a).
	ActionTimeout Duration `yaml:"action_timeout"`
}

// RGM configures the resource group manager.
type RGM struct {
	// OCFRoot is where OCF agents live (OCF_ROOT): resource.d/PROVIDER/AGENT.
	OCFRoot string `yaml:"ocf_root"`
	// KillGrace is the time a method that ran out of time gets between
	// SIGABRT and SIGKILL.
	KillGrace Duration `yaml:"kill_grace"`
	// FenceAction runs after a node fenced itself because a stop method
	// failed under Failover_mode HARD: empty (none), "reboot", or a shell
	// command (a fence agent, say).
	FenceAction string `yaml:"fence_action"`
}

// Default returns the configuration used when no file is given.
func Default() Config {
	return Config{
		Version: CurrentVersion,
		DataDir: "/var/lib/steady",
		Log:     Log{Level: "info", Format: "text"},
		API: API{
			Socket:      "/run/steady/steady.sock",
			SocketGroup: "steady",
			AdminGroup:  "steady-admin",
			ReadGroup:   "steady",
		},
		Store: Store{
			Heartbeat:    Duration(50 * time.Millisecond),
			Election:     Duration(500 * time.Millisecond),
			QuotaBytes:   2 << 30,
			StartTimeout: Duration(30 * time.Second),
			Endpoints:    []string{},
		},
		Events: Events{
			MaxBytes:          256 << 20,
			MaxAge:            Duration(30 * 24 * time.Hour),
			SegmentBytes:      16 << 20,
			SubscriberTimeout: Duration(60 * time.Second),
			SubscriberRetries: 5,
		},
		Uevents: Uevents{Enabled: true, ReceiveBuffer: 8 << 20},
		PMF:     PMF{Mode: "auto", Cgroup: "steady", ActionTimeout: Duration(time.Minute)},
		RGM:     RGM{OCFRoot: "/usr/lib/ocf", KillGrace: Duration(5 * time.Second)},
		Cluster: Cluster{LeaseTTL: Duration(2 * time.Second), Keepalive: Duration(100 * time.Millisecond),
			FenceAfter: Duration(600 * time.Millisecond), StopBudget: Duration(300 * time.Millisecond)},
		DR: DR{SysfsRoot: "/sys"},
		RCM: RCM{ScriptDirs: []string{"/etc/steady/rcm/scripts", "/etc/rcm/scripts"},
			MemoryMargin: 256 << 20, KillGrace: Duration(10 * time.Second)},
		IPMP: IPMP{FailureDetectionTime: Duration(10 * time.Second), Failback: true, HostnameDir: "/etc",
			ARPCount: 5, ARPInterval: Duration(2 * time.Second), Groups: []IPMPGroup{}},
	}
}

// Dev adapts c to development mode: one node, everything under dir
// (normally ./.steady), no system paths touched.
func (c Config) Dev(dir string) Config {
	c.DataDir = dir
	c.API.Socket = filepath.Join(dir, "steady.sock")
	return c
}

// NodeName returns the configured node name or the host name.
func (c Config) NodeName() (string, error) {
	if c.Node.Name != "" {
		return c.Node.Name, nil
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("config: node.name is empty and the host name is unknown: %w", err)
	}
	return h, nil
}
