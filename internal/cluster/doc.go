// Package cluster turns agents into a cluster: the cluster's certificate
// authority and the node certificates it signs (pki.go), one-time join
// tokens (token.go), and, built on them, membership, liveness leases,
// controller election and self-fencing.
//
// Trust: every node holds the CA certificate and its own certificate and
// key; peers and clients of the embedded etcd and agent-to-agent calls
// authenticate each other with them (TLS 1.3, mutual). A new node proves
// it may join with a one-time token, which also carries a fingerprint of
// the CA, so that the joining node can check it talks to the right
// cluster before it sends anything.
package cluster
