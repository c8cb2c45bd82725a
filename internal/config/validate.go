package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// maxSocketPath is the room in sockaddr_un.sun_path, less the final NUL.
const maxSocketPath = 107

var (
	nodeNameRE   = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,62})$`)
	cgroupNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._/-]{0,127}$`)
)

// Validate checks the configuration as a whole and returns an *Error with
// every problem, or nil.
func (c Config) Validate() error {
	var ps []Problem
	bad := func(key, format string, args ...any) {
		ps = append(ps, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	switch c.Version {
	case CurrentVersion:
	case 0:
		bad("version", "missing; the first line of the file should be \"version: %d\"", CurrentVersion)
	default:
		bad("version", "format version %d is not supported; this steady reads version %d", c.Version, CurrentVersion)
	}
	if c.Node.Name != "" && !nodeNameRE.MatchString(c.Node.Name) {
		bad("node.name", "%q is not a valid node name (letters, digits, . _ -, at most 63, starting with a letter or digit)", c.Node.Name)
	}
	if !filepath.IsAbs(c.DataDir) {
		bad("data_dir", "%q must be an absolute path", c.DataDir)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not a level; use debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q is not a format; use text or json", c.Log.Format)
	}
	switch {
	case !filepath.IsAbs(c.API.Socket):
		bad("api.socket", "%q must be an absolute path", c.API.Socket)
	case len(c.API.Socket) > maxSocketPath:
		bad("api.socket", "the path is %d bytes long; a Unix socket path may have at most %d", len(c.API.Socket), maxSocketPath)
	}
	if c.API.MetricsAddress != "" {
		if _, _, err := net.SplitHostPort(c.API.MetricsAddress); err != nil {
			bad("api.metrics_address", "%q is not host:port (e.g. 127.0.0.1:9464)", c.API.MetricsAddress)
		}
	}
	hb, el := c.Store.Heartbeat.D(), c.Store.Election.D()
	if hb < 10*time.Millisecond || hb > 5*time.Second {
		bad("store.heartbeat", "%v is outside 10ms..5s", hb)
	}
	if el < 5*hb {
		bad("store.election", "%v must be at least 5 times store.heartbeat (%v); 10 times is usual", el, hb)
	} else if el > 50*time.Second {
		bad("store.election", "%v is more than etcd's limit of 50s", el)
	}
	if q := c.Store.QuotaBytes; q < 16<<20 || q > 64<<30 {
		bad("store.quota_bytes", "%v is outside 16MiB..64GiB", q)
	}
	for i, ep := range c.Store.Endpoints {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			bad(fmt.Sprintf("store.endpoints[%d]", i), "%q is not an etcd client URL such as https://10.0.0.5:2379", ep)
		}
	}
	tls := c.Store.TLS
	for key, f := range map[string]string{"store.tls.ca_file": tls.CAFile, "store.tls.cert_file": tls.CertFile, "store.tls.key_file": tls.KeyFile} {
		if f != "" && !filepath.IsAbs(f) {
			bad(key, "%q is not an absolute path", f)
		}
	}
	if (tls.CertFile == "") != (tls.KeyFile == "") {
		bad("store.tls", "cert_file and key_file go together")
	}
	if tls != (StoreTLS{}) && len(c.Store.Endpoints) == 0 {
		bad("store.tls", "is for store.endpoints, which is empty (the embedded member needs no TLS settings)")
	}
	if t := c.Store.StartTimeout.D(); t < time.Second {
		bad("store.start_timeout", "%v is too short; give the store at least 1s", t)
	}
	e := c.Events
	if e.SegmentBytes < 64<<10 || e.SegmentBytes > 1<<30 {
		bad("events.segment_bytes", "%v is outside 64KiB..1GiB", e.SegmentBytes)
	}
	if e.MaxBytes < 2*e.SegmentBytes {
		bad("events.max_bytes", "%v must be at least twice events.segment_bytes (%v)", e.MaxBytes, e.SegmentBytes)
	}
	if e.MaxAge.D() < time.Minute {
		bad("events.max_age", "%v is shorter than the minimum of 1m", e.MaxAge.D())
	}
	if t := e.SubscriberTimeout.D(); t < 100*time.Millisecond || t > 24*time.Hour {
		bad("events.subscriber_timeout", "%v is outside 100ms..24h", t)
	}
	if e.SubscriberRetries < 0 || e.SubscriberRetries > 100 {
		bad("events.subscriber_retries", "%d is outside 0..100", e.SubscriberRetries)
	}
	if b := c.Uevents.ReceiveBuffer; b < 64<<10 || b > 256<<20 {
		bad("uevents.receive_buffer", "%v is outside 64KiB..256MiB", b)
	}
	switch c.PMF.Mode {
	case "auto", "cgroup", "process-group":
	default:
		bad("pmf.mode", "%q is not a mode; use auto, cgroup or process-group", c.PMF.Mode)
	}
	if !cgroupNameRE.MatchString(c.PMF.Cgroup) || strings.Contains(c.PMF.Cgroup, "..") {
		bad("pmf.cgroup", "%q must be a relative cgroup path of letters, digits, . _ - and /", c.PMF.Cgroup)
	}
	if t := c.PMF.ActionTimeout.D(); t < time.Second || t > time.Hour {
		bad("pmf.action_timeout", "%v is outside 1s..1h", t)
	}
	if !filepath.IsAbs(c.RGM.OCFRoot) {
		bad("rgm.ocf_root", "%q is not an absolute path", c.RGM.OCFRoot)
	}
	if t := c.RGM.KillGrace.D(); t < 100*time.Millisecond || t > 10*time.Minute {
		bad("rgm.kill_grace", "%v is outside 100ms..10m", t)
	}
	if err := clusterTiming(c.Cluster); err != nil {
		bad("cluster", "%v", err)
	}
	if !filepath.IsAbs(c.DR.SysfsRoot) {
		bad("dr.sysfs_root", "%q is not an absolute path", c.DR.SysfsRoot)
	}
	for i, d := range c.RCM.ScriptDirs {
		if !filepath.IsAbs(d) {
			bad(fmt.Sprintf("rcm.script_dirs[%d]", i), "%q is not an absolute path", d)
		}
	}
	if t := c.RCM.KillGrace.D(); t < 100*time.Millisecond || t > 10*time.Minute {
		bad("rcm.kill_grace", "%v is outside 100ms..10m", t)
	}
	c.validateIPMP(bad)
	if len(ps) > 0 {
		return &Error{Problems: ps}
	}
	return nil
}

var ifnameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$`)

// validateIPMP checks the multipathing section; the semantic rules of a
// group are the ipmp package's, checked again when the agent builds it.
func (c Config) validateIPMP(bad func(key, format string, args ...any)) {
	m := c.IPMP
	if t := m.FailureDetectionTime.D(); t < 100*time.Millisecond || t > time.Hour {
		bad("ipmp.failure_detection_time", "%v is outside 100ms..1h", t)
	}
	if m.HostnameDir != "" && !filepath.IsAbs(m.HostnameDir) {
		bad("ipmp.hostname_dir", "%q is not an absolute path", m.HostnameDir)
	}
	if m.ARPCount < 1 || m.ARPCount > 20 {
		bad("ipmp.arp_count", "%d is outside 1..20", m.ARPCount)
	}
	if t := m.ARPInterval.D(); t < 10*time.Millisecond || t > 20*time.Second {
		bad("ipmp.arp_interval", "%v is outside 10ms..20s", t)
	}
	groups, ifaces, addrs := map[string]bool{}, map[string]string{}, map[netip.Addr]string{}
	for i, g := range m.Groups {
		key := fmt.Sprintf("ipmp.groups[%d]", i)
		if g.Name == "" || len(g.Name) > 31 || strings.ContainsAny(g.Name, " \t/") {
			bad(key+".name", "%q: a group name has 1 to 31 characters, no spaces or slashes", g.Name)
		} else if groups[g.Name] {
			bad(key+".name", "group %s is named twice", g.Name)
		}
		groups[g.Name] = true
		if len(g.Interfaces) == 0 {
			bad(key+".interfaces", "group %s has no interfaces", g.Name)
		}
		for j, ifc := range g.Interfaces {
			ikey := fmt.Sprintf("%s.interfaces[%d]", key, j)
			if !ifnameRE.MatchString(ifc.Name) {
				bad(ikey+".name", "%q is not a Linux interface name", ifc.Name)
			} else if other, ok := ifaces[ifc.Name]; ok {
				bad(ikey+".name", "interface %s is already in group %s", ifc.Name, other)
			}
			ifaces[ifc.Name] = g.Name
			if ifc.Standby && len(ifc.DataAddresses) > 0 {
				bad(ikey+".data_addresses", "a standby interface may carry only test addresses")
			}
			for kind, list := range map[string][]string{"test_addresses": ifc.TestAddresses, "data_addresses": ifc.DataAddresses} {
				for k, a := range list {
					akey := fmt.Sprintf("%s.%s[%d]", ikey, kind, k)
					p, err := netip.ParsePrefix(a)
					if err != nil {
						bad(akey, "%q is not an address with its prefix length (192.0.2.10/24, 2001:db8::10/64)", a)
						continue
					}
					if p.Addr().IsUnspecified() || p.Addr().IsMulticast() || p.Addr().IsLoopback() {
						bad(akey, "%v is not a usable unicast address", p.Addr())
						continue
					}
					if other, ok := addrs[p.Addr()]; ok {
						bad(akey, "%v is already given to %s", p.Addr(), other)
					}
					addrs[p.Addr()] = ifc.Name
				}
			}
		}
	}
}

// clusterTiming checks the lease settings with the same arithmetic as
// the cluster package (config does not import it): three keepalives in
// fence_after, and fence_after with 0.1% drift plus stop_budget within a
// TTL of whole seconds.
func clusterTiming(c Cluster) error {
	ttl, ka, after, stop := c.LeaseTTL.D(), c.Keepalive.D(), c.FenceAfter.D(), c.StopBudget.D()
	switch {
	case ttl < time.Second || ttl%time.Second != 0:
		return fmt.Errorf("lease_ttl %v: the store counts whole seconds; use 1s or more", ttl)
	case ka <= 0 || 3*ka > after:
		return fmt.Errorf("keepalive %v: at least three keepalives must fit in fence_after (%v)", ka, after)
	case stop <= 0:
		return fmt.Errorf("stop_budget %v: the node needs time to freeze its failover work", stop)
	case ttl-time.Duration(float64(after)*1.001) < stop:
		return fmt.Errorf("fence_after %v leaves less than stop_budget (%v) before a lease of %v can expire", after, stop, ttl)
	}
	return nil
}
