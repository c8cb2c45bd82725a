package client

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/steady-ha/steady/api"
)

func rgmPath(kind, name string, rest ...string) string {
	p := "/v1/rgm/" + kind + "/" + url.PathEscape(name)
	for _, r := range rest {
		p += "/" + r
	}
	return p
}

// Types lists the registered resource types.
func (c *Client) Types(ctx context.Context) ([]api.RGMType, error) {
	var out []api.RGMType
	err := c.do(ctx, http.MethodGet, "/v1/rgm/types", nil, nil, &out)
	return out, err
}

// Type describes one resource type.
func (c *Client) Type(ctx context.Context, name string) (api.RGMType, error) {
	var out api.RGMType
	err := c.do(ctx, http.MethodGet, rgmPath("types", name), nil, nil, &out)
	return out, err
}

// RegisterType registers an RTR file's type or an OCF agent.
func (c *Client) RegisterType(ctx context.Context, req api.RGMTypeRequest) (api.RGMType, error) {
	var out api.RGMType
	err := c.do(ctx, http.MethodPost, "/v1/rgm/types", nil, req, &out)
	return out, err
}

// UnregisterType removes a type that no resource uses.
func (c *Client) UnregisterType(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, rgmPath("types", name), nil, nil, nil)
}

// TestOCF runs the ocf-tester sequence against an agent; step is called
// for each step as the agent reports it.
func (c *Client) TestOCF(ctx context.Context, req api.OCFTestRequest, step func(api.OCFTestStep)) (api.OCFTestReport, error) {
	resp, err := c.send(ctx, http.MethodPost, "/v1/rgm/ocf-test", nil, req, nil)
	if err != nil {
		return api.OCFTestReport{}, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var msg api.OCFTestMessage
		if err := json.Unmarshal(sc.Bytes(), &msg); err != nil {
			return api.OCFTestReport{}, &api.Error{Code: api.CodeInternal, Message: fmt.Sprintf("decoding the agent's test report: %v", err)}
		}
		switch {
		case msg.Error != nil:
			return api.OCFTestReport{}, msg.Error
		case msg.Report != nil:
			return *msg.Report, nil
		case msg.Step != nil && step != nil:
			step(*msg.Step)
		}
	}
	if err := sc.Err(); err != nil {
		return api.OCFTestReport{}, c.unreachable(ctx, err)
	}
	return api.OCFTestReport{}, &api.Error{Code: api.CodeInternal, Message: "the agent ended the test report early"}
}

// Groups lists the resource groups.
func (c *Client) Groups(ctx context.Context) ([]api.RGMGroup, error) {
	var out []api.RGMGroup
	err := c.do(ctx, http.MethodGet, "/v1/rgm/groups", nil, nil, &out)
	return out, err
}

// Group describes one group.
func (c *Client) Group(ctx context.Context, name string) (api.RGMGroup, error) {
	var out api.RGMGroup
	err := c.do(ctx, http.MethodGet, rgmPath("groups", name), nil, nil, &out)
	return out, err
}

// CreateGroup creates a managed, offline group.
func (c *Client) CreateGroup(ctx context.Context, req api.RGMGroupRequest) (api.RGMGroup, error) {
	var out api.RGMGroup
	err := c.do(ctx, http.MethodPost, "/v1/rgm/groups", nil, req, &out)
	return out, err
}

// SetGroup changes group properties.
func (c *Client) SetGroup(ctx context.Context, name string, props map[string]string) (api.RGMGroup, error) {
	var out api.RGMGroup
	err := c.do(ctx, http.MethodPatch, rgmPath("groups", name), nil, api.RGMSetRequest{Props: props}, &out)
	return out, err
}

// DeleteGroup deletes an empty group.
func (c *Client) DeleteGroup(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, rgmPath("groups", name), nil, nil, nil)
}

// GroupAction asks for online, offline, restart, manage, unmanage,
// suspend or resume; it returns at once, with the group as it then is.
func (c *Client) GroupAction(ctx context.Context, name, action string) (api.RGMGroup, error) {
	var out api.RGMGroup
	err := c.do(ctx, http.MethodPost, rgmPath("groups", name, action), nil, nil, &out)
	return out, err
}

// WaitGroup waits until the group is no longer pending, at most timeout.
func (c *Client) WaitGroup(ctx context.Context, name string, timeout time.Duration) (api.RGMGroup, error) {
	var out api.RGMGroup
	q := url.Values{}
	if timeout > 0 {
		q.Set("timeout", timeout.String())
	}
	err := c.do(ctx, http.MethodPost, rgmPath("groups", name, "wait"), q, nil, &out)
	return out, err
}

// Why explains a group's state.
func (c *Client) Why(ctx context.Context, name string) (api.RGMWhy, error) {
	var out api.RGMWhy
	err := c.do(ctx, http.MethodGet, rgmPath("groups", name, "why"), nil, nil, &out)
	return out, err
}

// Resources lists resources, of one group when group is not empty.
func (c *Client) Resources(ctx context.Context, group string) ([]api.RGMResource, error) {
	var out []api.RGMResource
	q := url.Values{}
	if group != "" {
		q.Set("group", group)
	}
	err := c.do(ctx, http.MethodGet, "/v1/rgm/resources", q, nil, &out)
	return out, err
}

// Resource describes one resource.
func (c *Client) Resource(ctx context.Context, name string) (api.RGMResource, error) {
	var out api.RGMResource
	err := c.do(ctx, http.MethodGet, rgmPath("resources", name), nil, nil, &out)
	return out, err
}

// CreateResource creates a resource (its type's VALIDATE runs first).
func (c *Client) CreateResource(ctx context.Context, req api.RGMResourceRequest) (api.RGMResource, error) {
	var out api.RGMResource
	err := c.do(ctx, http.MethodPost, "/v1/rgm/resources", nil, req, &out)
	return out, err
}

// SetResource changes resource properties.
func (c *Client) SetResource(ctx context.Context, name string, props map[string]string) (api.RGMResource, error) {
	var out api.RGMResource
	err := c.do(ctx, http.MethodPatch, rgmPath("resources", name), nil, api.RGMSetRequest{Props: props}, &out)
	return out, err
}

// DeleteResource deletes a disabled resource.
func (c *Client) DeleteResource(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, rgmPath("resources", name), nil, nil, nil)
}

// ResourceAction asks for enable, disable, monitor or unmonitor.
func (c *Client) ResourceAction(ctx context.Context, name, action string) (api.RGMResource, error) {
	var out api.RGMResource
	err := c.do(ctx, http.MethodPost, rgmPath("resources", name, action), nil, nil, &out)
	return out, err
}

// ClearResource clears a flag (STOP_FAILED) of a resource.
func (c *Client) ClearResource(ctx context.Context, name, flag string) (api.RGMResource, error) {
	var out api.RGMResource
	err := c.do(ctx, http.MethodPost, rgmPath("resources", name, "clear"), nil, api.RGMClearRequest{Flag: flag}, &out)
	return out, err
}

// ResourceLog returns the last lines of a resource's method log.
func (c *Client) ResourceLog(ctx context.Context, name string, lines int) (api.RGMLog, error) {
	var out api.RGMLog
	q := url.Values{}
	if lines > 0 {
		q.Set("lines", strconv.Itoa(lines))
	}
	err := c.do(ctx, http.MethodGet, rgmPath("resources", name, "log"), q, nil, &out)
	return out, err
}

// SetResourceStatus sets a resource's status (scha_resource_setstatus).
func (c *Client) SetResourceStatus(ctx context.Context, name string, req api.StatusRequest) (api.RGMResource, error) {
	var out api.RGMResource
	err := c.do(ctx, http.MethodPost, rgmPath("resources", name, "status"), nil, req, &out)
	return out, err
}

// Control sends a scha_control request; the answer's code is its outcome.
func (c *Client) Control(ctx context.Context, req api.ControlRequest) (api.ControlResponse, error) {
	var out api.ControlResponse
	err := c.do(ctx, http.MethodPost, "/v1/rgm/control", nil, req, &out)
	return out, err
}

// RGMCluster answers what scha_cluster_get asks.
func (c *Client) RGMCluster(ctx context.Context) (api.RGMCluster, error) {
	var out api.RGMCluster
	err := c.do(ctx, http.MethodGet, "/v1/rgm/cluster", nil, nil, &out)
	return out, err
}

// RGMExport returns the resource group manager's configuration as a
// declaration.
func (c *Client) RGMExport(ctx context.Context) (api.RGMDeclaration, error) {
	var out api.RGMDeclaration
	err := c.do(ctx, http.MethodGet, "/v1/rgm/config", nil, nil, &out)
	return out, err
}

// RGMApply makes a declaration true (or, with DryRun, only checks it).
func (c *Client) RGMApply(ctx context.Context, req api.RGMApplyRequest) (api.RGMApplyResult, error) {
	var out api.RGMApplyResult
	err := c.do(ctx, http.MethodPost, "/v1/rgm/apply", nil, req, &out)
	return out, err
}

// SwitchGroup asks for a group to move to node.
func (c *Client) SwitchGroup(ctx context.Context, name, node string) (api.RGMGroup, error) {
	var out api.RGMGroup
	err := c.do(ctx, http.MethodPost, rgmPath("groups", name, "switch"), nil, api.RGMSwitchRequest{Node: node}, &out)
	return out, err
}

// Placement lists where every group runs across the cluster.
func (c *Client) Placement(ctx context.Context) ([]api.RGMPlacement, error) {
	var out []api.RGMPlacement
	err := c.do(ctx, http.MethodGet, "/v1/rgm/placement", nil, nil, &out)
	return out, err
}

// Evacuate keeps every group off node for d; they move now.
func (c *Client) Evacuate(ctx context.Context, node string, d time.Duration) error {
	return c.do(ctx, http.MethodPost, "/v1/cluster/evacuate", nil, api.EvacuateRequest{Node: node, For: api.Duration(d)}, nil)
}
