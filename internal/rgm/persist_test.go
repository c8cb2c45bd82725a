package rgm

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/rgm/machine"
)

// The runtime state survives agent restarts through the snapshot and the
// log: a line cut short by a crash is ignored, lines the snapshot already
// includes are not replayed (a crash between writing the snapshot and
// emptying the log), and the one-file-per-object layout of earlier
// versions is read and replaced.
func TestStateLog(t *testing.T) {
	e := newEnv(t)
	calls := filepath.Join(e.work, "calls")
	e.rtrType("svc", calls, "")
	ctx := t.Context()
	e.m.CreateGroup(ctx, "g", nil)
	if err := e.m.CreateResource(ctx, api.RGMResourceRequest{Name: "a", Group: "g", Type: "svc"}); err != nil {
		t.Fatal(err)
	}
	e.m.GroupAction(ctx, "g", ActOnline)
	e.waitGroup("g", machine.GroupOnline, 10*time.Second)
	dir := filepath.Join(e.dir, "rgm", "state")
	restart := func(want string) {
		t.Helper()
		e.m.Close()
		e.m = nil
		e.open()
		e.waitGroup("g", want, 10*time.Second)
		time.Sleep(300 * time.Millisecond) // a wrong restart would have begun
	}
	count := func(what string) int { return strings.Count(strings.Join(lines(t, calls), ","), what) }

	// A torn last line.
	f, err := os.OpenFile(filepath.Join(dir, logFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"seq":999999,"next_id":1,"r":{"a":{"state":"STAR`)
	f.Close()
	restart(machine.GroupOnline)
	if count("start a") != 1 || count("stop a") != 0 {
		t.Fatalf("after a torn line: calls %v", lines(t, calls))
	}

	// Lines older than the snapshot, left by a crash before the log was
	// emptied: replayed, they would say a is online and it would be
	// stopped.
	e.m.GroupAction(ctx, "g", ActOffline)
	e.waitGroup("g", machine.GroupOffline, 10*time.Second)
	e.m.GroupAction(ctx, "g", ActOnline)
	e.waitGroup("g", machine.GroupOnline, 10*time.Second)
	old, err := os.ReadFile(filepath.Join(dir, logFile))
	if err != nil || len(old) == 0 {
		t.Fatalf("the log after the group came online: %q, %v", old, err)
	}
	e.m.GroupAction(ctx, "g", ActOffline)
	e.waitGroup("g", machine.GroupOffline, 10*time.Second)
	restart(machine.GroupOffline) // the restart writes a snapshot
	stops := count("stop a")
	e.m.Close()
	e.m = nil
	if err := os.WriteFile(filepath.Join(dir, logFile), old, 0o640); err != nil {
		t.Fatal(err)
	}
	e.open()
	e.waitGroup("g", machine.GroupOffline, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	if count("stop a") != stops || count("start a") != 2 {
		t.Fatalf("lines the snapshot included were replayed: calls %v", lines(t, calls))
	}

	// The layout of earlier versions.
	e.m.GroupAction(ctx, "g", ActOnline)
	e.waitGroup("g", machine.GroupOnline, 10*time.Second)
	e.m.Close()
	e.m = nil
	snap := readSnapshot(t, e, dir)
	os.Remove(filepath.Join(dir, snapshotFile))
	os.Remove(filepath.Join(dir, logFile))
	meta, _ := json.Marshal(stateMeta{Schema: machine.SnapshotSchema, NextID: snap.NextID})
	os.WriteFile(filepath.Join(dir, "meta.json"), meta, 0o640)
	for name, b := range snap.Resources {
		os.WriteFile(filepath.Join(dir, "r-"+name+".json"), b, 0o640)
	}
	for name, b := range snap.Groups {
		os.WriteFile(filepath.Join(dir, "g-"+name+".json"), b, 0o640)
	}
	starts := count("start a")
	e.open()
	e.waitGroup("g", machine.GroupOnline, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	if count("start a") != starts {
		t.Fatalf("the state of the earlier layout was lost: calls %v", lines(t, calls))
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "[rgm]*-*.json")); len(left) > 0 {
		t.Fatalf("files of the earlier layout are left: %v", left)
	}
	if _, err := os.Stat(filepath.Join(dir, "meta.json")); err == nil {
		t.Fatal("meta.json of the earlier layout is left")
	}
}

// readSnapshot waits for the manager's snapshot (the first save after a
// start writes one) and reads it.
func readSnapshot(t *testing.T, e *env, dir string) stateSnapshot {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, snapshotFile))
	if err != nil {
		t.Fatal(err)
	}
	var ss stateSnapshot
	if err := json.Unmarshal(b, &ss); err != nil {
		t.Fatal(err)
	}
	if ss.Resources["a"] == nil || ss.Groups["g"] == nil {
		t.Fatalf("the snapshot lacks a or g: %s", b)
	}
	// What the log adds since the snapshot is folded in, as loadState does.
	lb, _ := os.ReadFile(filepath.Join(dir, logFile))
	for _, l := range strings.Split(string(lb), "\n") {
		var sl stateLine
		if json.Unmarshal([]byte(l), &sl) != nil || sl.Seq <= ss.Seq {
			continue
		}
		ss.NextID = sl.NextID
		for k, v := range sl.Resources {
			ss.Resources[k] = v
		}
		for k, v := range sl.Groups {
			ss.Groups[k] = v
		}
	}
	return ss
}
