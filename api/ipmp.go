package api

import "time"

// IPMPStatus is the multipathing state of one node: what ipmpstat shows.
type IPMPStatus struct {
	// FDT is the configured failure detection time; Failback the policy.
	FDT        Duration        `json:"failure_detection_time"`
	Failback   bool            `json:"failback"`
	Groups     []IPMPGroup     `json:"groups"`
	Interfaces []IPMPInterface `json:"interfaces"`
	Addresses  []IPMPAddress   `json:"addresses"`
	Targets    []IPMPTargets   `json:"targets"`
}

// IPMPGroup is one group (ipmpstat -g).
type IPMPGroup struct {
	Name string `json:"name"`
	// State is ok, degraded or failed.
	State string `json:"state"`
	// FDT is the detection time in force (0 when nothing probes).
	FDT Duration `json:"failure_detection_time"`
	// Active, Inactive and Unusable are its interfaces by state.
	Active   []string `json:"active"`
	Inactive []string `json:"inactive,omitempty"`
	Unusable []string `json:"unusable,omitempty"`
}

// IPMPInterface is one member (ipmpstat -i).
type IPMPInterface struct {
	Name    string `json:"name"`
	Group   string `json:"group"`
	Active  bool   `json:"active"`
	Standby bool   `json:"standby,omitempty"`
	// Inactive: working but unused by policy.
	Inactive bool `json:"inactive,omitempty"`
	// Link is up, down or unknown; Probe ok, failed, unknown or disabled;
	// State ok, failed, offline or unknown.
	Link  string `json:"link"`
	Probe string `json:"probe"`
	State string `json:"state"`
	// Present is false for an interface the system does not have.
	Present bool `json:"present"`
	// DuplicateMAC: offlined because another member has its hardware
	// address.
	DuplicateMAC bool `json:"duplicate_mac,omitempty"`
	// Data are the data addresses it hosts now; Test its test addresses.
	Data []string `json:"data_addresses,omitempty"`
	Test []string `json:"test_addresses,omitempty"`
}

// IPMPAddress is one data address (ipmpstat -a).
type IPMPAddress struct {
	Address string `json:"address"` // with its prefix length
	Group   string `json:"group"`
	// State is up (hosted) or down (nowhere to host it).
	State string `json:"state"`
	// Inbound is the member it is on; Outbound the active members.
	Inbound  string   `json:"inbound,omitempty"`
	Outbound []string `json:"outbound,omitempty"`
	Home     string   `json:"home,omitempty"`
	// Floating: added by a logical hostname resource, not configured.
	Floating bool `json:"floating,omitempty"`
}

// IPMPTargets is one member's probe targets (ipmpstat -t).
type IPMPTargets struct {
	Interface string `json:"interface"`
	// Mode is routes, multicast or disabled.
	Mode     string   `json:"mode"`
	TestAddr string   `json:"test_address,omitempty"`
	Targets  []string `json:"targets"`
}

// IPMPProbe is one probe (ipmpstat -p).
type IPMPProbe struct {
	Time      time.Time `json:"time"`
	Interface string    `json:"interface"`
	Seq       uint16    `json:"seq"`
	Target    string    `json:"target"`
	// RTT is empty for a lost probe.
	RTT  Duration `json:"rtt,omitempty"`
	Lost bool     `json:"lost,omitempty"`
}

// IPMPRequest takes an interface offline or puts it back.
type IPMPRequest struct {
	Interface string `json:"interface"`
	// Force offlines even the last working interface of its group.
	Force bool `json:"force,omitempty"`
}
