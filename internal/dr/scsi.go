package dr

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// SCSI are the APs scsi/H:C:T:L, one per SCSI device (disks, CD drives,
// tapes; SATA and USB disks too). Unconfigure deletes the device; the
// kernel does not check for users, which is why RCM asks first.
// Configure scans its host for the same channel, target and LUN.
type SCSI struct {
	Root  string
	Saved *Saved
}

// Class is "scsi".
func (s SCSI) Class() string { return "scsi" }

func (s SCSI) dir() string { return join(s.Root, "class/scsi_device") }

type scsiSaved struct {
	Info string `json:"info"`
}

// scsiTypes are the SCSI peripheral device types users meet.
var scsiTypes = map[string]string{"0": "disk", "1": "tape", "4": "worm", "5": "cd/dvd", "7": "optical", "8": "changer", "12": "raid", "13": "enclosure", "14": "disk"}

// List reads every SCSI device, and the deleted ones that can come back.
func (s SCSI) List(ctx context.Context) ([]AP, error) {
	entries, err := os.ReadDir(s.dir())
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("dr: listing SCSI devices: %w", err)
	}
	seen := map[string]bool{}
	var out []AP
	for _, e := range entries {
		if _, ok := parseHCTL(e.Name()); ok {
			seen["scsi/"+e.Name()] = true
			out = append(out, s.read(e.Name()))
		}
	}
	out = append(out, s.deleted(seen)...)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (s SCSI) deleted(seen map[string]bool) []AP {
	var out []AP
	for _, id := range s.Saved.IDs() {
		var sv scsiSaved
		if !strings.HasPrefix(id, "scsi/") || seen[id] || !s.Saved.Get(id, &sv) {
			continue
		}
		out = append(out, AP{ID: id, Type: "scsi", Class: "scsi", Receptacle: Connected, Occupant: Unconfigured,
			Condition: CondUnknown, Info: "deleted (" + sv.Info + "); configure scans its host"})
	}
	return out
}

// Get reads one device.
func (s SCSI) Get(ctx context.Context, id string) (AP, error) {
	name, ok := strings.CutPrefix(id, "scsi/")
	if _, valid := parseHCTL(name); !ok || !valid {
		return AP{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if exists(join(s.dir(), name)) {
		return s.read(name), nil
	}
	for _, ap := range s.deleted(nil) {
		if ap.ID == id {
			return ap, nil
		}
	}
	return AP{}, fmt.Errorf("%w: %s", ErrNotFound, id)
}

func (s SCSI) read(name string) AP {
	dev := join(s.dir(), name, "device")
	typ, _ := readTrim(join(dev, "type"))
	vendor, _ := readTrim(join(dev, "vendor"))
	model, _ := readTrim(join(dev, "model"))
	state, _ := readTrim(join(dev, "state"))
	kind := scsiTypes[typ]
	if kind == "" {
		kind = "scsi"
	}
	ap := AP{ID: "scsi/" + name, Type: kind, Class: "scsi", Receptacle: Connected, Occupant: Configured,
		Condition: scsiCondition(state), StatusTime: statusTime(dev)}
	if r, ok := SysPath(s.Root, "class/scsi_device/"+name+"/device"); ok {
		ap.PhysID = r
		ap.Resources = []string{r}
	}
	info := strings.TrimSpace(vendor + " " + model)
	if es, err := os.ReadDir(join(dev, "block")); err == nil {
		for _, e := range es {
			info += " " + e.Name()
		}
	}
	ap.Info = strings.TrimSpace(info + " (" + state + ")")
	return ap
}

// scsiCondition maps the device state onto a cfgadm condition.
func scsiCondition(state string) string {
	switch state {
	case "running":
		return CondOK
	case "blocked", "quiesce", "created-blocked", "transport-offline":
		return CondFailing
	case "offline":
		return CondFailed
	}
	return CondUnknown
}

// Test re-reads the device state.
func (s SCSI) Test(ctx context.Context, ap AP) (string, error) {
	if ap.Occupant != Configured {
		return CondUnknown, nil
	}
	st, err := readTrim(join(s.dir(), strings.TrimPrefix(ap.ID, "scsi/"), "device", "state"))
	if err != nil {
		return CondUnknown, fmt.Errorf("%w: %w", ErrDriver, err)
	}
	return scsiCondition(st), nil
}

// Unconfigure deletes the device.
func (s SCSI) Unconfigure(ctx context.Context, ap AP) error {
	if err := s.Saved.Put(ap.ID, scsiSaved{Info: ap.Info}); err != nil {
		return err
	}
	if err := write(join(s.dir(), strings.TrimPrefix(ap.ID, "scsi/"), "device", "delete"), "1"); err != nil {
		s.Saved.Delete(ap.ID)
		return err
	}
	return nil
}

// Configure scans the host for the device.
func (s SCSI) Configure(ctx context.Context, ap AP) error {
	h, _ := parseHCTL(strings.TrimPrefix(ap.ID, "scsi/"))
	scan := join(s.Root, fmt.Sprintf("class/scsi_host/host%d/scan", h[0]))
	if err := write(scan, fmt.Sprintf("%d %d %d", h[1], h[2], h[3])); err != nil {
		return err
	}
	if !appears(join(s.dir(), strings.TrimPrefix(ap.ID, "scsi/"))) {
		return fmt.Errorf("%w: a scan of host%d did not find %s", ErrDriver, h[0], ap.ID)
	}
	return s.Saved.Delete(ap.ID)
}

// parseHCTL splits "H:C:T:L".
func parseHCTL(s string) ([4]int, bool) {
	var out [4]int
	parts := strings.Split(s, ":")
	if len(parts) != 4 {
		return out, false
	}
	for i, x := range parts {
		n, err := strconv.Atoi(x)
		if err != nil || n < 0 {
			return out, false
		}
		out[i] = n
	}
	return out, true
}
