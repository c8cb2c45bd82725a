package rgm

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/rgm/machine"
	"github.com/steady-ha/steady/internal/rgm/model"
)

func decl(port string, online bool) api.RGMDeclaration {
	return api.RGMDeclaration{Groups: []api.RGMGroupDecl{
		{Name: "web", Online: &online, Props: map[string][]string{"Pingpong_interval": {"600"}},
			Resources: []api.RGMResourceDecl{
				{Name: "front", Type: "svc", Props: map[string][]string{"Port": {port}, "Resource_dependencies": {"back"}}},
				{Name: "back", Type: model.ProcessType, Props: map[string][]string{"Command": {"/bin/sleep,300"}}},
			}},
	}}
}

// TestApplyIsAllOrNothing: a declaration is checked whole (values,
// tunability, VALIDATE) before one transaction writes it; a refusal
// anywhere leaves everything as it was; a dry run writes nothing; an
// export applied again changes nothing.
func TestApplyIsAllOrNothing(t *testing.T) {
	e := newEnv(t)
	log := filepath.Join(e.work, "calls")
	e.rtrType("svc", log, "")
	ctx := t.Context()

	// VALIDATE of front refuses Port 0: nothing is created, not even the
	// group or back, which were fine.
	_, err := e.m.Apply(ctx, decl("0", true), false)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "port 0 is not allowed") {
		t.Fatalf("apply with a bad Port: %v", err)
	}
	if len(e.m.Config().Groups) != 0 || len(e.m.Config().Resources) != 0 {
		t.Fatalf("a refused apply left objects: %v %v", e.m.Config().Groups, e.m.Config().Resources)
	}

	res, err := e.m.Apply(ctx, decl("8080", true), true)
	if err != nil || res.Applied || len(res.Changes) != 3 {
		t.Fatalf("dry run: %+v %v", res, err)
	}
	if len(e.m.Config().Groups) != 0 {
		t.Fatal("a dry run created the group")
	}

	res, err = e.m.Apply(ctx, decl("8080", true), false)
	if err != nil || !res.Applied {
		t.Fatalf("apply: %+v %v", res, err)
	}
	e.waitGroup("web", machine.GroupOnline, 20*time.Second)
	if got := strings.Join(lines(t, log), ","); !strings.Contains(got, "validate front") || !strings.HasSuffix(got, "start front") {
		t.Fatalf("calls %s", got)
	}

	// Port is tunable only while disabled: refused, and the group's change
	// in the same declaration is not made either.
	d := decl("9090", true)
	d.Groups[0].Props["Pingpong_interval"] = []string{"700"}
	if _, err := e.m.Apply(ctx, d, false); err == nil || !strings.Contains(err.Error(), "Port can only be changed while front is disabled") {
		t.Fatalf("apply of a non-tunable change: %v", err)
	}
	if v := e.m.Config().GroupValues(e.m.Config().Groups["web"]).Int("Pingpong_interval", 0); v != 600 {
		t.Fatalf("Pingpong_interval %d after a refused apply", v)
	}

	// The export is what was declared: applying it changes nothing.
	res, err = e.m.Apply(ctx, e.m.Export(), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Changes {
		if c.Action != "unchanged" {
			t.Fatalf("export applied again changes %+v", c)
		}
	}

	// A property left out returns to its default; a group not named is kept.
	e.m.CreateGroup(ctx, "other", nil)
	d = decl("8080", true)
	delete(d.Groups[0].Props, "Pingpong_interval")
	res, err = e.m.Apply(ctx, d, false)
	if err != nil {
		t.Fatal(err)
	}
	var kept, updated bool
	for _, c := range res.Changes {
		kept = kept || (c.Name == "other" && c.Action == "kept")
		updated = updated || (c.Name == "web" && c.Action == "update" && strings.Contains(strings.Join(c.Details, ";"), `Pingpong_interval: "600" -> (default)`))
	}
	if !kept || !updated {
		t.Fatalf("changes %+v", res.Changes)
	}
	if _, ok := e.m.Config().Groups["other"]; !ok {
		t.Fatal("a group the declaration does not name was removed")
	}
	os.Remove(log)
}
