package api

import "time"

// ClusterStatus is what "steady cluster status" shows.
type ClusterStatus struct {
	Node       string        `json:"node"` // the node answering
	Controller string        `json:"controller,omitempty"`
	Epoch      uint64        `json:"epoch"` // the answering node's epoch
	Fenced     bool          `json:"fenced"`
	Nodes      []ClusterNode `json:"nodes"`
	Timing     ClusterTiming `json:"timing"`
}

// ClusterNode is one member node.
type ClusterNode struct {
	Name      string    `json:"name"`
	State     string    `json:"state"`      // up, down, leaving
	StoreRole string    `json:"store_role"` // leader, voter, learner, client
	Version   string    `json:"version,omitempty"`
	Address   string    `json:"address,omitempty"`
	Started   time.Time `json:"started,omitzero"`
	Epoch     uint64    `json:"epoch,omitempty"`
	// Heartbeat is when the node last renewed its lease, as it reported
	// (its own clock).
	Heartbeat time.Time `json:"last_heartbeat,omitzero"`
	Joined    time.Time `json:"joined,omitzero"`
}

// ClusterTiming are the liveness settings in force.
type ClusterTiming struct {
	LeaseTTL   Duration `json:"lease_ttl"`
	Keepalive  Duration `json:"keepalive"`
	FenceAfter Duration `json:"fence_after"`
}
