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
	// DownReason says who declared the node down, when and why.
	DownReason string `json:"down_reason,omitempty"`
}

// ClusterTiming are the liveness settings in force.
type ClusterTiming struct {
	LeaseTTL   Duration `json:"lease_ttl"`
	Keepalive  Duration `json:"keepalive"`
	FenceAfter Duration `json:"fence_after"`
}

// ClusterInitRequest asks to make this node the first of a new cluster.
type ClusterInitRequest struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}

// ClusterJoinRequest asks this node to join the cluster of the node at
// Target with a token.
type ClusterJoinRequest struct {
	Target  string `json:"target"`
	Token   string `json:"token"`
	Address string `json:"address,omitempty"` // this node's; empty: the one that reaches Target
}

// ClusterFormed answers init and join: the agent restarts as a member.
type ClusterFormed struct {
	Name       string `json:"name"`
	ID         string `json:"id"`
	Address    string `json:"address"`
	Restarting bool   `json:"restarting"`
}

// ClusterTokenRequest asks for a join token.
type ClusterTokenRequest struct {
	TTL Duration `json:"ttl,omitempty"` // default 1h
}

// ClusterToken is a one-time join token.
type ClusterToken struct {
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
}

// ClusterRemoveRequest asks to remove a node that is gone.
type ClusterRemoveRequest struct {
	Node string `json:"node"`
}
