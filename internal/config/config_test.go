package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultFileParsesToDefault(t *testing.T) {
	got, err := Parse("default.yaml", []byte(DefaultFile))
	if err != nil {
		t.Fatalf("the printed default configuration does not parse: %v", err)
	}
	if want := Default(); !reflect.DeepEqual(got, want) {
		t.Fatalf("default file differs from Default():\n got %+v\nwant %+v", got, want)
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		want  []string // substrings of the error, all required; none means success
		check func(t *testing.T, c Config)
	}{
		{
			name: "minimal keeps defaults",
			in:   "version: 1\n",
			check: func(t *testing.T, c Config) {
				if c.Store.Heartbeat.D() != 50*time.Millisecond || c.Store.Election.D() != 500*time.Millisecond {
					t.Errorf("store timings = %v/%v, want 50ms/500ms", c.Store.Heartbeat.D(), c.Store.Election.D())
				}
			},
		},
		{
			name: "values override",
			in:   "version: 1\nstore:\n  heartbeat: 100ms\n  election: 1s\nevents:\n  max_bytes: 1GiB\n",
			check: func(t *testing.T, c Config) {
				if c.Store.Heartbeat.D() != 100*time.Millisecond || c.Events.MaxBytes != 1<<30 {
					t.Errorf("got heartbeat %v max_bytes %v", c.Store.Heartbeat.D(), c.Events.MaxBytes)
				}
			},
		},
		{
			name: "unknown key names file line and key",
			in:   "version: 1\nstore:\n  heartbeat: 50ms\n  hearbeat_ms: 10\n",
			want: []string{"test.yaml:4:3: store.hearbeat_ms: unknown key \"hearbeat_ms\"", "did you mean \"heartbeat\"", "in store"},
		},
		{
			name: "unknown top-level key",
			in:   "version: 1\nstorage: {}\n",
			want: []string{"test.yaml:2:1: storage: unknown key \"storage\"", "did you mean \"store\""},
		},
		{
			name: "missing version",
			in:   "log:\n  level: info\n",
			want: []string{"test.yaml: version: missing"},
		},
		{
			name: "future version",
			in:   "version: 2\n",
			want: []string{"test.yaml:1:10: version: format version 2 is not supported"},
		},
		{
			name: "bare number duration",
			in:   "version: 1\nstore:\n  election: 500\n",
			want: []string{"test.yaml:3:13: store.election: \"500\" is not a duration"},
		},
		{
			name: "wrong type",
			in:   "version: 1\nevents:\n  subscriber_retries: many\n",
			want: []string{"test.yaml:3:23: events.subscriber_retries: cannot unmarshal !!str `many` into int"},
		},
		{
			name: "validation problems are all reported with positions",
			in:   "version: 1\nlog:\n  level: loud\nstore:\n  heartbeat: 200ms\n  election: 300ms\n",
			want: []string{"2 problems", "test.yaml:3:10: log.level: \"loud\" is not a level", "test.yaml:6:13: store.election: 300ms must be at least 5 times"},
		},
		{
			name: "section must be a mapping",
			in:   "version: 1\nstore: [1, 2]\n",
			want: []string{"test.yaml:2:8: store: store must be a mapping of keys to values, not a list"},
		},
		{
			name: "bad multipathing group",
			in:   "version: 1\nipmp:\n  groups:\n    - name: g0\n      interfaces:\n        - name: eth1\n          standby: true\n          data_addresses: [192.0.2.1]\n        - name: eth1\n          test_addresses: [192.0.2.2/24]\n",
			want: []string{
				"test.yaml:8:27: ipmp.groups[0].interfaces[0].data_addresses: a standby interface may carry only test addresses",
				"ipmp.groups[0].interfaces[0].data_addresses[0]: \"192.0.2.1\" is not an address with its prefix length",
				"test.yaml:9:17: ipmp.groups[0].interfaces[1].name: interface eth1 is already in group g0",
			},
		},
		{
			name: "empty section keeps defaults",
			in:   "version: 1\nstore:\n",
		},
		{
			name: "empty file",
			in:   "",
			want: []string{"test.yaml: the file is empty"},
		},
		{
			name: "syntax error",
			in:   "version: 1\nstore:\n  heartbeat: [\n",
			want: []string{"test.yaml:"},
		},
		{
			name: "duplicate key",
			in:   "version: 1\nversion: 1\n",
			want: []string{"test.yaml:2", "already defined"},
		},
		{
			name: "two documents",
			in:   "version: 1\n---\nversion: 1\n",
			want: []string{"more than one YAML document"},
		},
		{
			name: "bad size",
			in:   "version: 1\nevents:\n  max_bytes: lots\n",
			want: []string{"test.yaml:3:14: events.max_bytes: \"lots\" is not a size"},
		},
		{
			name: "relative data dir and long socket",
			in:   "version: 1\ndata_dir: var/lib\napi:\n  socket: /" + strings.Repeat("s", 120) + "\n",
			want: []string{"data_dir: \"var/lib\" must be an absolute path", "api.socket: the path is 121 bytes long"},
		},
		{
			name: "external etcd",
			in:   "version: 1\nstore:\n  endpoints: [\"https://10.0.0.5:2379\", \"10.0.0.6:2379\"]\n  tls:\n    cert_file: /etc/c.pem\n",
			want: []string{`store.endpoints[1]: "10.0.0.6:2379" is not an etcd client URL`, "store.tls: cert_file and key_file go together"},
		},
		{
			name: "tls without endpoints, and a bad fence",
			in:   "version: 1\nstore:\n  tls:\n    ca_file: /etc/ca.pem\ncluster:\n  fence_after: 1900ms\n",
			want: []string{"store.tls: is for store.endpoints", "cluster: fence_after 1.9s leaves less than stop_budget"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("test.yaml", []byte(tt.in))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if tt.check != nil {
					tt.check(t, c)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; want one containing %q", tt.want)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Errorf("error is %T, want *config.Error", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestSize(t *testing.T) {
	for in, want := range map[string]Size{"0": 0, "512": 512, "4KiB": 4096, "16MiB": 16 << 20, "2GiB": 2 << 30, "1MB": 1e6, "7B": 7} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5GiB", "10XB", "99999999999TiB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) succeeded", in)
		}
	}
	if s := Size(256 << 20).String(); s != "256MiB" {
		t.Errorf("String = %q", s)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(DefaultFile))
	f.Add([]byte("version: 1\nstore:\n  heartbeat: 1s\n"))
	f.Add([]byte("version: 1\nx: [1,\n"))
	f.Add([]byte("version: 1\napi: {socket: &a /x, admin_group: *a}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("error %v is not a located *config.Error", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a configuration that does not validate: %v", err)
		}
	})
}
