package pmf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/steady-ha/steady/internal/runas"
)

// Limits of a Spec.
const (
	MaxRetries = 10000
	MaxPeriod  = 366 * 24 * time.Hour
	MaxLevel   = 100
	maxTagLen  = 200
)

// Errors of the process monitor.
var (
	ErrInvalid    = errors.New("pmf: invalid request")
	ErrNotFound   = errors.New("pmf: no such tag")
	ErrExists     = errors.New("pmf: tag is already running")
	ErrPermission = errors.New("pmf: permission denied")
	ErrTimeout    = errors.New("pmf: timed out waiting for the processes to exit")
	ErrClosed     = errors.New("pmf: process monitor is stopping")
)

// Owner is the user a tag's processes run as; only this user (or an
// administrator) may change or stop the tag.
type Owner struct {
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups,omitempty"`
	Name   string   `json:"name"`
	Home   string   `json:"home"`
}

// OwnerOf makes an Owner of a resolved identity.
func OwnerOf(id runas.Identity) Owner {
	return Owner{UID: id.UID, GID: id.GID, Groups: id.Groups, Name: id.Name, Home: id.Home}
}

func (o Owner) identity() runas.Identity {
	return runas.Identity{UID: o.UID, GID: o.GID, Groups: o.Groups, Name: o.Name, Home: o.Home}
}

// Spec describes a command to run and supervise under a tag.
//
// The struct is persisted with the tag (with a schema version), so fields
// can be added later, such as the resource group manager's request to stop
// a tag's processes when the agent has been gone too long.
type Spec struct {
	Tag string `json:"tag"`
	// Command is the program (an absolute path) and its arguments.
	Command []string `json:"command"`
	// Env is the complete environment of the command (KEY=VALUE).
	Env []string `json:"env"`
	// Dir is the working directory.
	Dir   string `json:"dir"`
	Owner Owner  `json:"owner"`
	// Retries is how many restarts are allowed within Period; -1 means
	// without limit, 0 never restarts.
	Retries int `json:"retries"`
	// Period is the sliding window Retries counts in; 0 means the whole
	// life of the tag.
	Period time.Duration `json:"period"`
	// Level limits monitoring to descendants up to this fork depth (0: the
	// command's own process only); -1 monitors all descendants.
	Level int `json:"level"`
	// Action is run, with the arguments "failed" and the tag, when the
	// restarts are exhausted: exit 0 relaunches the command, anything else
	// removes the tag. Empty: the tag is removed.
	Action []string `json:"action,omitempty"`
}

// ValidTag reports whether s can name a tag: 1 to 200 bytes of letters,
// digits and . _ , : @ + = -, not starting with . or -. (Sun Cluster data
// services use tags such as "rg,res,0.svc".)
func ValidTag(s string) bool {
	if s == "" || len(s) > maxTagLen || s[0] == '.' || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._,:@+=-", c) >= 0) {
			return false
		}
	}
	return true
}

// Validate checks the spec. It looks at the files it names: the command
// must exist and be executable, the directory must exist, and the action
// program must be safe to run (not writable by group or others).
func (s Spec) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if !ValidTag(s.Tag) {
		return bad("tag %q: use 1 to %d letters, digits and . _ , : @ + = - (not first . or -)", s.Tag, maxTagLen)
	}
	if len(s.Command) == 0 || s.Command[0] == "" {
		return bad("no command to run")
	}
	if !filepath.IsAbs(s.Command[0]) {
		return bad("command %q must be an absolute path", s.Command[0])
	}
	if fi, err := os.Stat(s.Command[0]); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return bad("command %s does not exist", s.Command[0])
		}
		return bad("command %s: %v", s.Command[0], err)
	} else if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return bad("command %s is not an executable file", s.Command[0])
	}
	for _, e := range s.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return bad("environment entry %q is not NAME=VALUE", e)
		}
	}
	if !filepath.IsAbs(s.Dir) {
		return bad("working directory %q must be an absolute path", s.Dir)
	}
	if fi, err := os.Stat(s.Dir); err != nil || !fi.IsDir() {
		return bad("working directory %s does not exist", s.Dir)
	}
	if s.Retries < -1 || s.Retries > MaxRetries {
		return bad("retries %d: give -1 (no limit) or 0 to %d", s.Retries, MaxRetries)
	}
	if s.Period < 0 || (s.Period > 0 && s.Period < time.Second) || s.Period > MaxPeriod {
		return bad("period %v: give 0 (the whole life of the tag) or 1s to %v", s.Period, MaxPeriod)
	}
	if s.Level < -1 || s.Level > MaxLevel {
		return bad("child monitoring level %d: give -1 (all) or 0 to %d", s.Level, MaxLevel)
	}
	if len(s.Action) > 0 {
		if _, err := runas.CheckScript(s.Action[0]); err != nil {
			return bad("action program: %v", err)
		}
	}
	return nil
}

// SplitAction splits an action program given as one string (pmfadm -a),
// honouring single and double quotes, into its words.
func SplitAction(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			cur.WriteByte(c)
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("%w: action %q has an unterminated %c quote", ErrInvalid, s, quote)
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("%w: the action program is empty", ErrInvalid)
	}
	return words, nil
}
