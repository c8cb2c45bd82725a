package agent

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/dr"
	"github.com/steady-ha/steady/internal/rcm"
	"github.com/steady-ha/steady/internal/rcm/modules"
	"github.com/steady-ha/steady/internal/rcm/script"
	"github.com/steady-ha/steady/internal/rcm/state"
)

// Event classes of dynamic reconfiguration, as in Solaris sysevent.
const (
	ClassDR              = "EC_dr"
	SubclassAPChange     = "ESC_dr_ap_state_change"
	SubclassDRRequest    = "ESC_dr_req"
	ClassRCM             = "EC_rcm"
	SubclassRCMPhase     = "ESC_rcm_phase"
	SubclassRCMRecovered = "ESC_rcm_recovered"
)

// startDR builds the rcm engine with its built-in modules and the RCM
// scripts, the DR manager with a driver per kind of attachment point,
// and settles the operations a previous agent left in flight.
func (a *Agent) startDR(ctx context.Context) error {
	cfg := a.cfg
	sys := cfg.DR.SysfsRoot
	store, snap, err := state.Open(filepath.Join(cfg.DataDir, "rcm", "inflight.json"))
	if err != nil {
		return err
	}
	log := a.log.With("component", "rcm")
	canon := func(n string) string { return n }
	if sys == "/sys" {
		canon = dr.DevicePath
	}
	rcmPub := a.bus.Publisher("steady:rcm")
	a.rcm = rcm.New(rcm.Options{
		Store:    store,
		Restored: snap,
		Canon:    canon,
		Observer: func(p rcm.Phase) {
			attrs := api.Attrs{"op_id": api.Int(int64(p.ID)), "depth": api.Int(int64(p.Depth)), "op": api.String(p.Op.String()),
				"phase": api.String(p.Step), "resources": api.Strings(p.Resources...), "flags": api.String(p.Flags.String())}
			if p.Err != nil {
				attrs["error"] = api.String(p.Err.Error())
			}
			pctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if _, err := rcmPub.Publish(pctx, ClassRCM, SubclassRCMPhase, attrs); err != nil {
				log.Warn("publishing an rcm phase", "err", err)
			}
			log.Debug("rcm phase", "op", p.Op, "id", p.ID, "depth", p.Depth, "step", p.Step, "resources", p.Resources, "err", p.Err)
		},
	})
	pids := func() []modules.Process {
		var out []modules.Process
		for _, t := range a.pmf.List() {
			for _, pid := range t.PIDs {
				out = append(out, modules.Process{PID: pid, Label: "tag " + t.Tag})
			}
		}
		return out
	}
	// Interfaces are read over netlink, not sysfs: a synthetic sysfs tree
	// (tests, benchmarks) describes a machine without them.
	real := sys == "/sys"
	clients := []rcm.Client{
		&modules.CPU{Root: sys, Processes: pids},
		&modules.Memory{Root: sys, Margin: int64(cfg.RCM.MemoryMargin)},
		&modules.Filesys{Proc: "/proc", Sys: sys},
	}
	if real {
		clients = append(clients, &modules.IP{Multipath: a.multipath()}, &modules.Network{Sys: sys})
	}
	for _, c := range clients {
		if err := a.rcm.AddClient(ctx, c); err != nil {
			// A module that cannot read its part of the machine stays,
			// with its error shown in "steady rcm info"; it is asked
			// again before every operation.
			log.Warn("rcm module could not register", "module", c.Name(), "err", err)
		}
	}
	a.scripts = script.NewSet(a.rcm, cfg.RCM.ScriptDirs, script.Options{
		Spawner: a.reaper, Logger: log.With("part", "scripts"), KillGrace: cfg.RCM.KillGrace.D(),
	})
	if err := a.scripts.Reload(ctx); err != nil {
		log.Warn("rcm scripts", "err", err)
	}

	saved, err := dr.OpenSaved(filepath.Join(cfg.DataDir, "dr", "saved.json"))
	if err != nil {
		return err
	}
	pci := dr.PCI{Root: sys, Saved: saved}
	drPub := a.bus.Publisher("steady:dr")
	publish := func(subclass string, attrs api.Attrs) {
		pctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := drPub.Publish(pctx, ClassDR, subclass, attrs); err != nil {
			a.log.Warn("publishing a DR event", "err", err)
		}
	}
	drivers := []dr.Driver{
		dr.CPUs{Root: sys}, dr.Memory{Root: sys}, pci, dr.Slots{Root: sys, PCI: pci},
		dr.SCSI{Root: sys, Saved: saved}, dr.Loops{Root: sys, Dev: "/dev", Saved: saved},
	}
	if real {
		nets := dr.Nets{Saved: saved}
		if a.ipmp != nil {
			// A configure gives an interface back to its group.
			nets.Configured = func(ctx context.Context, name string) {
				if _, _, offline, err := a.ipmp.Member(ctx, name); err == nil && offline {
					if err := a.ipmp.UndoOffline(ctx, name); err != nil {
						a.log.Warn("putting a configured interface back in its group", "interface", name, "err", err)
					}
				}
			}
		}
		drivers = append(drivers, nets)
	}
	a.dr = dr.NewManager(dr.Options{
		Engine:  a.rcm,
		Drivers: drivers,
		Changed: func(ap dr.AP, hint string) {
			a.log.Info("attachment point changed", "component", "dr", "ap_id", ap.ID, "hint", hint, "o_state", ap.Occupant, "r_state", ap.Receptacle)
			publish(SubclassAPChange, api.Attrs{"dr_ap_id": api.String(ap.ID), "dr_hint": api.String(hint)})
		},
		Requested: func(ap dr.AP, kind string) {
			publish(SubclassDRRequest, api.Attrs{"dr_ap_id": api.String(ap.ID), "dr_request_type": api.String(kind)})
		},
	})

	// Operations the previous agent left in flight: an offline whose
	// driver step happened (the AP is no longer configured) is finished
	// with a remove notice, everything else undone.
	inflight := a.rcm.InFlight()
	removed := func(en rcm.Entry) bool {
		id, ok := strings.CutPrefix(en.Initiator, "dr ")
		if !ok {
			return false
		}
		_, ap, err := a.dr.Get(ctx, id)
		if errors.Is(err, dr.ErrNotFound) {
			return true // the AP is gone: the driver step happened
		}
		return err == nil && ap.Occupant != dr.Configured
	}
	if err := a.rcm.Recover(ctx, removed); err != nil {
		log.Error("settling rcm operations left in flight", "err", err)
	}
	for _, en := range inflight {
		log.Warn("settled an rcm operation the previous agent left in flight", "id", en.ID, "op", en.Op, "state", en.State, "resources", en.Resources, "initiator", en.Initiator)
		attrs := api.Attrs{"op_id": api.Int(int64(en.ID)), "op": api.String(en.Op.String()), "state": api.String(en.State.String()),
			"resources": api.Strings(en.Resources...), "initiator": api.String(en.Initiator)}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		rcmPub.Publish(pctx, ClassRCM, SubclassRCMRecovered, attrs)
		cancel()
	}
	return nil
}
