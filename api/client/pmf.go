package client

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/steady-ha/steady/api"
)

// PMFStatus describes the agent's process monitor.
func (c *Client) PMFStatus(ctx context.Context) (api.PMFStatus, error) {
	var st api.PMFStatus
	err := c.do(ctx, http.MethodGet, "/v1/pmf", nil, nil, &st)
	return st, err
}

// PMFTags lists the supervised tags.
func (c *Client) PMFTags(ctx context.Context) ([]api.PMFTag, error) {
	var tags []api.PMFTag
	err := c.do(ctx, http.MethodGet, "/v1/pmf/tags", nil, nil, &tags)
	return tags, err
}

// PMFTag describes one tag.
func (c *Client) PMFTag(ctx context.Context, tag string) (api.PMFTag, error) {
	var t api.PMFTag
	err := c.do(ctx, http.MethodGet, "/v1/pmf/tags/"+url.PathEscape(tag), nil, nil, &t)
	return t, err
}

// PMFStart starts a command under a tag; it runs as the calling user.
func (c *Client) PMFStart(ctx context.Context, req api.PMFStartRequest) (api.PMFTag, error) {
	var t api.PMFTag
	err := c.do(ctx, http.MethodPost, "/v1/pmf/tags", nil, req, &t)
	return t, err
}

// PMFStop stops monitoring a tag and signals its processes.
func (c *Client) PMFStop(ctx context.Context, tag string, req api.PMFSignalRequest) error {
	return c.do(ctx, http.MethodPost, "/v1/pmf/tags/"+url.PathEscape(tag)+"/stop", nil, req, nil)
}

// PMFKill signals a tag's processes; monitoring goes on.
func (c *Client) PMFKill(ctx context.Context, tag string, req api.PMFSignalRequest) error {
	return c.do(ctx, http.MethodPost, "/v1/pmf/tags/"+url.PathEscape(tag)+"/kill", nil, req, nil)
}

// PMFModify changes a tag's retries and period.
func (c *Client) PMFModify(ctx context.Context, tag string, req api.PMFModifyRequest) (api.PMFTag, error) {
	var t api.PMFTag
	err := c.do(ctx, http.MethodPatch, "/v1/pmf/tags/"+url.PathEscape(tag), nil, req, &t)
	return t, err
}

// PMFWait waits until a tag is gone, at most timeout (0: no limit).
func (c *Client) PMFWait(ctx context.Context, tag string, timeout time.Duration) error {
	q := url.Values{}
	if timeout > 0 {
		q.Set("timeout", timeout.String())
	}
	return c.do(ctx, http.MethodPost, "/v1/pmf/tags/"+url.PathEscape(tag)+"/wait", q, nil, nil)
}
