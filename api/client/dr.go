package client

import (
	"context"
	"net/url"
	"time"

	"github.com/steady-ha/steady/api"
)

// DRList lists the attachment points; with resources, each with the
// names its users register.
func (c *Client) DRList(ctx context.Context, resources bool) ([]api.AP, error) {
	var q url.Values
	if resources {
		q = url.Values{"resources": {"true"}}
	}
	var out []api.AP
	return out, c.do(ctx, "GET", "/v1/dr/aps", q, nil, &out)
}

// DR runs a function on attachment points. Failures of single APs are
// in the outcomes; the error is for a request that could not run.
func (c *Client) DR(ctx context.Context, req api.DRRequest) (*api.DRResult, error) {
	var out api.DRResult
	return &out, c.do(ctx, "POST", "/v1/dr/operations", nil, req, &out)
}

// RCMInfo asks who uses the resources.
func (c *Client) RCMInfo(ctx context.Context, resources []string, dependents bool) (*api.RCMInfo, error) {
	q := url.Values{"resource": resources}
	if dependents {
		q.Set("dependents", "true")
	}
	var out api.RCMInfo
	return &out, c.do(ctx, "GET", "/v1/rcm/info", q, nil, &out)
}

// RCMClients lists the engine's clients and what they registered.
func (c *Client) RCMClients(ctx context.Context) ([]api.RCMClient, error) {
	var out []api.RCMClient
	return out, c.do(ctx, "GET", "/v1/rcm/clients", nil, nil, &out)
}

// RCMScripts lists the RCM script files.
func (c *Client) RCMScripts(ctx context.Context) ([]api.RCMScript, error) {
	var out []api.RCMScript
	return out, c.do(ctx, "GET", "/v1/rcm/scripts", nil, nil, &out)
}

// RCMReload loads new and changed scripts, drops removed ones, and asks
// every script to register again.
func (c *Client) RCMReload(ctx context.Context) ([]api.RCMScript, error) {
	var out []api.RCMScript
	return out, c.do(ctx, "POST", "/v1/rcm/scripts/reload", nil, nil, &out)
}

// ClusterStatus is the cluster as the agent's node sees it.
func (c *Client) ClusterStatus(ctx context.Context) (*api.ClusterStatus, error) {
	var out api.ClusterStatus
	return &out, c.do(ctx, "GET", "/v1/cluster/status", nil, nil, &out)
}

// ClusterInit makes this node the first of a new cluster; the agent
// restarts.
func (c *Client) ClusterInit(ctx context.Context, req api.ClusterInitRequest) (*api.ClusterFormed, error) {
	var out api.ClusterFormed
	return &out, c.do(ctx, "POST", "/v1/cluster/init", nil, req, &out)
}

// ClusterToken makes a one-time join token.
func (c *Client) ClusterToken(ctx context.Context, req api.ClusterTokenRequest) (*api.ClusterToken, error) {
	var out api.ClusterToken
	return &out, c.do(ctx, "POST", "/v1/cluster/tokens", nil, req, &out)
}

// ClusterJoin joins this node to another node's cluster; the agent
// restarts.
func (c *Client) ClusterJoin(ctx context.Context, req api.ClusterJoinRequest) (*api.ClusterFormed, error) {
	var out api.ClusterFormed
	return &out, c.do(ctx, "POST", "/v1/cluster/join", nil, req, &out)
}

// ClusterRemove removes a node that is gone from the cluster.
func (c *Client) ClusterRemove(ctx context.Context, node string) error {
	return c.do(ctx, "POST", "/v1/cluster/remove", nil, api.ClusterRemoveRequest{Node: node}, nil)
}

// ClusterLeave takes this node out of its cluster; the agent restarts
// standalone.
func (c *Client) ClusterLeave(ctx context.Context) error {
	return c.do(ctx, "POST", "/v1/cluster/leave", nil, struct{}{}, nil)
}

// IPMP reads the multipathing state.
func (c *Client) IPMP(ctx context.Context) (*api.IPMPStatus, error) {
	var out api.IPMPStatus
	return &out, c.do(ctx, "GET", "/v1/ipmp", nil, nil, &out)
}

// IPMPProbes lists the probes sent since t (the zero time: all kept).
func (c *Client) IPMPProbes(ctx context.Context, since time.Time) ([]api.IPMPProbe, error) {
	var q url.Values
	if !since.IsZero() {
		q = url.Values{"since": {since.Format(time.RFC3339Nano)}}
	}
	var out []api.IPMPProbe
	return out, c.do(ctx, "GET", "/v1/ipmp/probes", q, nil, &out)
}

// IPMPOffline takes an interface offline in its group (if_mpadm -d), or
// with undo puts it back (if_mpadm -r).
func (c *Client) IPMPOffline(ctx context.Context, iface string, force, undo bool) (*api.IPMPStatus, error) {
	path := "/v1/ipmp/offline"
	if undo {
		path = "/v1/ipmp/undo-offline"
	}
	var out api.IPMPStatus
	return &out, c.do(ctx, "POST", path, nil, api.IPMPRequest{Interface: iface, Force: force}, &out)
}
