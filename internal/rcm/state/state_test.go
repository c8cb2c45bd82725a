package state

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/steady-ha/steady/internal/rcm"
)

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rcm", "inflight.json")
	f, snap, err := Open(path)
	if err != nil || len(snap.Entries) != 0 {
		t.Fatalf("fresh: %v %+v", err, snap)
	}
	want := rcm.Snapshot{NextID: 8, Entries: []rcm.Entry{{ID: 7, Op: rcm.OpOffline, Resources: []string{"cpu/1"}, State: rcm.StateRemoving, Initiator: "dr cpu1", Started: time.Unix(1700000000, 0).UTC()}}}
	if err := f.Save(want); err != nil {
		t.Fatal(err)
	}
	_, got, err := Open(path)
	if err != nil || got.NextID != 8 || len(got.Entries) != 1 || got.Entries[0].State != rcm.StateRemoving || got.Entries[0].Initiator != "dr cpu1" {
		t.Fatalf("read back: %v %+v", err, got)
	}
	os.WriteFile(path, []byte("{garbage"), 0o600)
	if _, _, err := Open(path); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged file: %v", err)
	}
}
