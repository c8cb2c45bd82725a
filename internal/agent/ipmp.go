package agent

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/config"
	"github.com/steady-ha/steady/internal/ipmp"
	"github.com/steady-ha/steady/internal/rcm/modules"
)

// Event class of multipathing.
const ClassIPMP = "EC_steady_ipmp"

// ipmpGroups turns the configuration's groups and the hostname files
// into the daemon's, with the place of each problem named.
func ipmpGroups(cfg config.IPMP) ([]ipmp.GroupConfig, []string, error) {
	var groups []ipmp.GroupConfig
	for i, g := range cfg.Groups {
		gc := ipmp.GroupConfig{Name: g.Name}
		for j, ifc := range g.Interfaces {
			m := ipmp.MemberConfig{Interface: ifc.Name, Standby: ifc.Standby, TestLinkLocal: ifc.TestLinkLocal}
			for k, a := range ifc.TestAddresses {
				p, err := netip.ParsePrefix(a)
				if err != nil {
					return nil, nil, fmt.Errorf("ipmp.groups[%d].interfaces[%d].test_addresses[%d]: %w", i, j, k, err)
				}
				m.Test = append(m.Test, p)
			}
			for k, a := range ifc.DataAddresses {
				p, err := netip.ParsePrefix(a)
				if err != nil {
					return nil, nil, fmt.Errorf("ipmp.groups[%d].interfaces[%d].data_addresses[%d]: %w", i, j, k, err)
				}
				m.Data = append(m.Data, p)
			}
			gc.Members = append(gc.Members, m)
		}
		groups = append(groups, gc)
	}
	if cfg.HostnameDir == "" {
		return groups, nil, nil
	}
	r, err := ipmp.LoadResolver(filepath.Join(cfg.HostnameDir, "hosts"), filepath.Join(cfg.HostnameDir, "netmasks"))
	if err != nil {
		return nil, nil, err
	}
	files, err := ipmp.ReadHostnameFiles(cfg.HostnameDir, r)
	if err != nil {
		return nil, nil, err
	}
	merged, err := ipmp.Merge(groups, files.Groups)
	if err != nil {
		return nil, nil, fmt.Errorf("ipmp: %w", err)
	}
	return merged, files.Ungrouped, nil
}

// startIPMP starts the multipathing daemon when a group is configured;
// its messages become events (published off its loop, which must never
// wait for the journal).
func (a *Agent) startIPMP(ctx, bgCtx context.Context, cfg config.Config) error {
	groups, ungrouped, err := ipmpGroups(cfg.IPMP)
	if err != nil {
		return err
	}
	log := a.log.With("component", "ipmp")
	if len(ungrouped) > 0 {
		log.Info("hostname files that name no IPMP group are left alone", "interfaces", ungrouped)
	}
	if len(groups) == 0 {
		return nil
	}
	pub := a.bus.Publisher("steady:ipmp")
	msgs := make(chan ipmp.Message, 1024)
	d, err := ipmp.New(ipmp.Options{
		Settings:    ipmp.Settings{FDT: cfg.IPMP.FailureDetectionTime.D(), Failback: cfg.IPMP.Failback},
		Groups:      groups,
		ARPCount:    cfg.IPMP.ARPCount,
		ARPInterval: cfg.IPMP.ARPInterval.D(),
		StateFile:   filepath.Join(cfg.DataDir, "ipmp", "state.json"),
		Logger:      log,
		OnMessage: func(m ipmp.Message) {
			select {
			case msgs <- m:
			default:
				log.Warn("dropping an ipmp event: the journal is behind", "message", m.Text)
			}
		},
	})
	if err != nil {
		return err
	}
	a.bg.Add(1)
	go func() {
		defer a.bg.Done()
		for {
			select {
			case <-bgCtx.Done():
				return
			case m := <-msgs:
				pctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				attrs := api.Attrs{"message": api.String(m.Text), "group": api.String(m.Group)}
				if m.Interface != "" {
					attrs["interface"] = api.String(m.Interface)
				}
				if _, err := pub.Publish(pctx, ClassIPMP, "ESC_ipmp_"+strings.ReplaceAll(m.Kind, "-", "_"), attrs); err != nil {
					log.Warn("publishing an ipmp event", "err", err)
				}
				cancel()
			}
		}
	}()
	if err := d.Start(ctx); err != nil {
		return err
	}
	a.ipmp = d
	return nil
}

// multipath is the daemon as the ip module sees it (nil without groups:
// a nil *Daemon in an interface would not be nil).
func (a *Agent) multipath() modules.Multipath {
	if a.ipmp == nil {
		return nil
	}
	return a.ipmp
}

// ipmpHealth is the multipathing line of "steady status": failed when a
// group has no working interface, degraded when one has lost some.
func (a *Agent) ipmpHealth(ctx context.Context, add func(string, api.Health, string)) {
	if a.ipmp == nil {
		add("ipmp", api.HealthOK, "no IPMP groups")
		return
	}
	st, err := a.ipmp.Status(ctx)
	if err != nil {
		add("ipmp", api.HealthFailed, err.Error())
		return
	}
	h := api.HealthOK
	var parts []string
	for _, g := range st.Groups {
		switch g.State {
		case "failed":
			h = api.HealthFailed
			parts = append(parts, g.Name+" failed: no working interface")
		case "degraded":
			if h == api.HealthOK {
				h = api.HealthDegraded
			}
			parts = append(parts, g.Name+" degraded: "+strings.Join(g.Unusable, ", ")+" unusable")
		}
	}
	if h == api.HealthOK {
		add("ipmp", h, fmt.Sprintf("%d group(s), every interface working", len(st.Groups)))
		return
	}
	add("ipmp", h, strings.Join(parts, "; ")+` (see "ipmpstat -i")`)
}
