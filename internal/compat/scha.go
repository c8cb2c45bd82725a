package compat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/api/client"
)

// The scha_* commands of Sun Cluster (scha_cmds(1HA)), which data service
// methods and monitors call: queries print one value per line (booleans
// TRUE/FALSE, arrays one element per line, an extension property its type
// first, a status its keyword then its message); the exit status is the
// scha_err_t value of the outcome.

// SchaResourceGet is scha_resource_get.
var SchaResourceGet = Personality{
	Name:    "scha_resource_get",
	Summary: "print a property or state of a resource (Sun Cluster scha_resource_get)",
	Main: func(ctx context.Context, args []string, io Stdio) int {
		return schaRun(io, "scha_resource_get", "usage: scha_resource_get [-Q] -O optag -R resource [-G group] [args]",
			func() error { return schaResourceGet(ctx, args, io.Out) })
	},
}

// SchaResourceGroupGet is scha_resourcegroup_get.
var SchaResourceGroupGet = Personality{
	Name:    "scha_resourcegroup_get",
	Summary: "print a property or state of a resource group (Sun Cluster scha_resourcegroup_get)",
	Main: func(ctx context.Context, args []string, io Stdio) int {
		return schaRun(io, "scha_resourcegroup_get", "usage: scha_resourcegroup_get -O optag -G group [args]",
			func() error { return schaGroupGet(ctx, args, io.Out) })
	},
}

// SchaResourceTypeGet is scha_resourcetype_get.
var SchaResourceTypeGet = Personality{
	Name:    "scha_resourcetype_get",
	Summary: "print a property of a resource type (Sun Cluster scha_resourcetype_get)",
	Main: func(ctx context.Context, args []string, io Stdio) int {
		return schaRun(io, "scha_resourcetype_get", "usage: scha_resourcetype_get -O optag -T type",
			func() error { return schaTypeGet(ctx, args, io.Out) })
	},
}

// SchaClusterGet is scha_cluster_get.
var SchaClusterGet = Personality{
	Name:    "scha_cluster_get",
	Summary: "print a property of the cluster (Sun Cluster scha_cluster_get)",
	Main: func(ctx context.Context, args []string, io Stdio) int {
		return schaRun(io, "scha_cluster_get", "usage: scha_cluster_get -O optag [args]",
			func() error { return schaClusterGet(ctx, args, io.Out) })
	},
}

// SchaControl is scha_control.
var SchaControl = Personality{
	Name:    "scha_control",
	Summary: "ask the resource group manager to restart or give over (Sun Cluster scha_control)",
	Main: func(ctx context.Context, args []string, io Stdio) int {
		return schaRun(io, "scha_control", "usage: scha_control -O optag -G group -R resource",
			func() error { return schaControl(ctx, args) })
	},
}

// SchaResourceSetstatus is scha_resource_setstatus.
var SchaResourceSetstatus = Personality{
	Name:    "scha_resource_setstatus",
	Summary: "set the status of a resource (Sun Cluster scha_resource_setstatus)",
	Main: func(ctx context.Context, args []string, io Stdio) int {
		return schaRun(io, "scha_resource_setstatus", "usage: scha_resource_setstatus -R resource -G group -s OK|DEGRADED|FAULTED|UNKNOWN|OFFLINE [-m message]",
			func() error { return schaSetStatus(ctx, args) })
	},
}

// schaError is a failure with its scha_err_t code.
type schaError struct {
	code api.SchaErr
	msg  string
}

func (e *schaError) Error() string { return e.msg }

func schaErr(code api.SchaErr, format string, args ...any) error {
	return &schaError{code: code, msg: fmt.Sprintf(format, args...)}
}

// schaRun runs a scha command and turns its error into the exit status,
// with the message (and, for SCHA_ERR_INVAL, the usage) on stderr.
func schaRun(io Stdio, name, usageText string, f func() error) int {
	err := f()
	if err == nil {
		return int(api.SchaNoErr)
	}
	var se *schaError
	if !errors.As(err, &se) {
		se = &schaError{code: api.SchaInternal, msg: err.Error()}
	}
	if se.msg != "" {
		fmt.Fprintf(io.Err, "%s: %s\n", name, se.msg)
	}
	if se.code == api.SchaInval {
		fmt.Fprintln(io.Err, usageText)
	}
	return int(se.code)
}

// fromAPI maps an agent error to a scha_err_t; notFound is the code for
// the object the command names.
func fromAPI(err error, notFound api.SchaErr) error {
	var ae *api.Error
	if !errors.As(err, &ae) {
		return schaErr(api.SchaInternal, "%v", err)
	}
	code := api.SchaInternal
	switch ae.Code {
	case api.CodeNotFound:
		code = notFound
	case api.CodeInvalid:
		code = api.SchaInval
	case api.CodeUnauthorized:
		code = api.SchaAccess
	case api.CodeConflict, api.CodeBusy:
		code = api.SchaState
	case api.CodeRefused:
		code = api.SchaChecks
	case api.CodeUnavailable:
		code = api.SchaReconf // the agent is not serving: retry later
	}
	return schaErr(code, "%s", ae.Message)
}

// schaArgs parses the options of a scha command: the values of flags in
// spec, the remaining operands, and the optag (upper-cased).
type schaArgs struct {
	vals     map[byte]string
	flags    map[byte]bool
	operands []string
}

func parseScha(args []string, spec string, required string) (schaArgs, error) {
	opts, operands, err := getopt(args, spec)
	if err != nil {
		return schaArgs{}, schaErr(api.SchaInval, "%v", err)
	}
	a := schaArgs{vals: map[byte]string{}, flags: map[byte]bool{}, operands: operands}
	for _, o := range opts {
		if _, dup := a.vals[o.flag]; dup {
			return a, schaErr(api.SchaInval, "-%c given twice", o.flag)
		}
		a.vals[o.flag], a.flags[o.flag] = o.val, true
	}
	for _, f := range []byte(required) {
		if a.vals[f] == "" {
			return a, schaErr(api.SchaInval, "-%c is required", f)
		}
	}
	if _, ok := a.vals['Z']; ok && a.vals['Z'] != "global" {
		return a, schaErr(api.SchaInval, "-Z %s: steady has no zone clusters (only global)", a.vals['Z'])
	}
	return a, nil
}

func (a schaArgs) optag() string { return strings.ToUpper(a.vals['O']) }

// operand returns the i-th operand or explains what the optag needs.
func (a schaArgs) operand(i int, what string) (string, error) {
	if i >= len(a.operands) {
		return "", schaErr(api.SchaInval, "optag %s needs %s", a.optag(), what)
	}
	return a.operands[i], nil
}

// printValues prints one value per line, booleans as TRUE/FALSE.
func printValues(w io.Writer, typ string, vals []string) {
	for _, v := range vals {
		if strings.EqualFold(typ, "BOOLEAN") {
			if strings.EqualFold(v, "true") {
				v = "TRUE"
			} else {
				v = "FALSE"
			}
		}
		fmt.Fprintln(w, v)
	}
}

// checkNode accepts only the local node in the _NODE optags: the
// resource group manager of one node answers for its own node.
func checkNode(local, node string) error {
	if node != local {
		return schaErr(api.SchaNode, "node %s: this node (%s) can only answer for itself", node, local)
	}
	return nil
}

func findProp(props []api.RGMProp, name string) (api.RGMProp, bool) {
	for _, p := range props {
		if strings.EqualFold(p.Name, name) {
			return p, true
		}
	}
	return api.RGMProp{}, false
}

// stripScope drops "{LOCAL_NODE}" and the like from dependency entries
// (scha_resource_get without -Q).
func stripScope(vals []string) []string {
	out := make([]string, 0, len(vals))
	for _, v := range vals {
		if i := strings.IndexByte(v, '{'); i >= 0 {
			v = v[:i]
		}
		out = append(out, v)
	}
	return out
}

func switchText(on bool) string {
	if on {
		return "ENABLED"
	}
	return "DISABLED"
}

func schaResourceGet(ctx context.Context, args []string, w io.Writer) error {
	a, err := parseScha(args, "QO:R:G:Z:", "OR")
	if err != nil {
		return err
	}
	c := client.New(client.Socket(""))
	r, err := c.Resource(ctx, a.vals['R'])
	if err != nil {
		return fromAPI(err, api.SchaRsrc)
	}
	if g := a.vals['G']; g != "" && g != r.Group {
		return schaErr(api.SchaRsrc, "resource %s is not in group %s", r.Name, g)
	}
	nodeArg := func(i int) error {
		n, err := a.operand(i, "a node name")
		if err != nil {
			return err
		}
		return checkNode(r.Node, n)
	}
	extension := func(name string) error {
		p, ok := findProp(r.Props, name)
		if !ok || !p.Extension {
			return schaErr(api.SchaProp, "%s is not an extension property of resource %s", name, r.Name)
		}
		fmt.Fprintln(w, strings.ToLower(p.Type))
		printValues(w, p.Type, p.Values)
		return nil
	}
	switch tag := a.optag(); tag {
	case "RESOURCE_STATE", "RESOURCE_STATE_NODE":
		if tag == "RESOURCE_STATE_NODE" {
			if err := nodeArg(0); err != nil {
				return err
			}
		}
		fmt.Fprintln(w, r.State)
	case "STATUS", "STATUS_NODE":
		if tag == "STATUS_NODE" {
			if err := nodeArg(0); err != nil {
				return err
			}
		}
		fmt.Fprintln(w, r.Status)
		fmt.Fprintln(w, r.StatusMsg)
	case "EXTENSION":
		name, err := a.operand(0, "the name of an extension property")
		if err != nil {
			return err
		}
		return extension(name)
	case "EXTENSION_NODE":
		name, err := a.operand(0, "the name of an extension property and a node")
		if err != nil {
			return err
		}
		if err := nodeArg(1); err != nil {
			return err
		}
		return extension(name)
	case "ALL_EXTENSIONS":
		for _, p := range r.Props {
			if p.Extension {
				fmt.Fprintln(w, p.Name)
			}
		}
	case "NUM_RG_RESTARTS":
		fmt.Fprintln(w, r.RGRestarts)
	case "NUM_RESOURCE_RESTARTS":
		fmt.Fprintln(w, r.Restarts)
	case "ON_OFF_SWITCH", "ON_OFF_SWITCH_NODE":
		if tag == "ON_OFF_SWITCH_NODE" {
			if err := nodeArg(0); err != nil {
				return err
			}
		}
		fmt.Fprintln(w, switchText(r.Enabled))
	case "MONITORED_SWITCH", "MONITORED_SWITCH_NODE":
		if tag == "MONITORED_SWITCH_NODE" {
			if err := nodeArg(0); err != nil {
				return err
			}
		}
		fmt.Fprintln(w, switchText(r.Monitored))
	case "TYPE":
		fmt.Fprintln(w, r.Type)
	case "TYPE_VERSION":
		fmt.Fprintln(w, r.TypeVersion)
	case "GROUP", "RESOURCEGROUP_NAME":
		fmt.Fprintln(w, r.Group)
	case "":
		return schaErr(api.SchaInval, "-O is required")
	default:
		if p, ok := findProp(r.Props, tag); ok && !p.Extension {
			vals := p.Values
			if strings.HasPrefix(tag, "RESOURCE_DEPENDENCIES") && !a.flags['Q'] {
				vals = stripScope(vals)
			}
			printValues(w, p.Type, vals)
			return nil
		}
		// The resource's type answers the type's properties.
		t, err := c.Type(ctx, r.Type)
		if err != nil {
			return fromAPI(err, api.SchaRT)
		}
		if ok, err := printTypeProp(w, t, tag); ok || err != nil {
			return err
		}
		return schaErr(api.SchaTag, "unknown optag %s", tag)
	}
	return nil
}

// printTypeProp prints a resource type property; false when tag is not one.
func printTypeProp(w io.Writer, t api.RGMType, tag string) (bool, error) {
	bools := map[string]bool{"FAILOVER": t.Failover, "SINGLE_INSTANCE": t.SingleInstance,
		"RT_SYSTEM": false, "IS_LOGICAL_HOSTNAME": false, "IS_SHARED_ADDRESS": false}
	if v, ok := bools[tag]; ok {
		printValues(w, "BOOLEAN", []string{strconv.FormatBool(v)})
		return true, nil
	}
	switch tag {
	case "API_VERSION":
		fmt.Fprintln(w, t.APIVersion)
	case "RT_VERSION":
		fmt.Fprintln(w, t.Version)
	case "RT_DESCRIPTION":
		fmt.Fprintln(w, t.Description)
	case "RT_BASEDIR":
		fmt.Fprintln(w, t.BaseDir)
	case "VENDOR_ID":
		fmt.Fprintln(w, t.Vendor)
	case "INIT_NODES":
		fmt.Fprintln(w, t.InitNodes)
	case "RESOURCE_LIST":
		printValues(w, "STRINGARRAY", t.Resources)
	case "INSTALLED_NODES":
		fmt.Fprintln(w, "*") // every node: types are registered cluster-wide
	case "BOOT", "FINI", "INIT", "MONITOR_CHECK", "MONITOR_START", "MONITOR_STOP", "POSTNET_STOP", "PRENET_START",
		"START", "STOP", "UPDATE", "VALIDATE":
		if p := t.Methods[tag]; p != "" {
			fmt.Fprintln(w, p)
		}
	default:
		for k, v := range t.Extra {
			if strings.EqualFold(k, tag) {
				printValues(w, "STRINGARRAY", v)
				return true, nil
			}
		}
		return false, nil
	}
	return true, nil
}

func schaGroupGet(ctx context.Context, args []string, w io.Writer) error {
	a, err := parseScha(args, "O:G:Z:", "OG")
	if err != nil {
		return err
	}
	g, err := client.New(client.Socket("")).Group(ctx, a.vals['G'])
	if err != nil {
		return fromAPI(err, api.SchaRG)
	}
	switch tag := a.optag(); tag {
	case "RG_STATE":
		fmt.Fprintln(w, g.State)
	case "RG_STATE_NODE":
		n, err := a.operand(0, "a node name")
		if err != nil {
			return err
		}
		if err := checkNode(g.Node, n); err != nil {
			return err
		}
		fmt.Fprintln(w, g.State)
	case "RESOURCE_LIST":
		printValues(w, "STRINGARRAY", g.Resources)
	case "RG_MODE":
		mode := "Failover"
		if p, ok := findProp(g.Props, "Maximum_primaries"); ok && len(p.Values) == 1 && p.Values[0] != "1" {
			mode = "Scalable"
		}
		fmt.Fprintln(w, mode)
	case "RG_SUSPENDED":
		printValues(w, "BOOLEAN", []string{strconv.FormatBool(g.Suspended)})
	case "RG_UNMANAGED":
		printValues(w, "BOOLEAN", []string{strconv.FormatBool(!g.Managed)})
	case "NUM_RG_RESTARTS":
		fmt.Fprintln(w, g.Restarts)
	case "":
		return schaErr(api.SchaInval, "-O is required")
	default:
		p, ok := findProp(g.Props, tag)
		if !ok {
			return schaErr(api.SchaTag, "unknown optag %s", tag)
		}
		printValues(w, p.Type, p.Values)
	}
	return nil
}

func schaTypeGet(ctx context.Context, args []string, w io.Writer) error {
	a, err := parseScha(args, "O:T:Z:", "OT")
	if err != nil {
		return err
	}
	t, err := client.New(client.Socket("")).Type(ctx, a.vals['T'])
	if err != nil {
		return fromAPI(err, api.SchaRT)
	}
	ok, err := printTypeProp(w, t, a.optag())
	if err == nil && !ok {
		err = schaErr(api.SchaTag, "unknown optag %s", a.optag())
	}
	return err
}

func schaClusterGet(ctx context.Context, args []string, w io.Writer) error {
	a, err := parseScha(args, "O:Z:", "O")
	if err != nil {
		return err
	}
	cl, err := client.New(client.Socket("")).RGMCluster(ctx)
	if err != nil {
		return fromAPI(err, api.SchaInternal)
	}
	idOf := func(name string) (int, bool) {
		for i, n := range cl.Nodes {
			if n == name {
				return i + 1, true
			}
		}
		return 0, false
	}
	nodeArg := func() (string, error) {
		n, err := a.operand(0, "a node name")
		if err != nil {
			return "", err
		}
		if _, ok := idOf(n); !ok {
			return "", schaErr(api.SchaNode, "unknown node %s", n)
		}
		return n, nil
	}
	switch tag := a.optag(); tag {
	case "NODENAME_LOCAL":
		fmt.Fprintln(w, cl.LocalNode)
	case "NODEID_LOCAL":
		fmt.Fprintln(w, cl.LocalNodeID)
	case "ALL_NODENAMES":
		printValues(w, "STRINGARRAY", cl.Nodes)
	case "ALL_NODEIDS":
		for i := range cl.Nodes {
			fmt.Fprintln(w, i+1)
		}
	case "NODENAME_NODEID":
		s, err := a.operand(0, "a node id")
		if err != nil {
			return err
		}
		id, err := strconv.Atoi(s)
		if err != nil || id < 1 || id > len(cl.Nodes) {
			return schaErr(api.SchaNode, "unknown node id %s", s)
		}
		fmt.Fprintln(w, cl.Nodes[id-1])
	case "NODEID_NODENAME":
		n, err := nodeArg()
		if err != nil {
			return err
		}
		id, _ := idOf(n)
		fmt.Fprintln(w, id)
	case "NODESTATE_LOCAL":
		id, _ := idOf(cl.LocalNode)
		fmt.Fprintln(w, cl.NodeStates[id-1])
	case "NODESTATE_NODE":
		n, err := nodeArg()
		if err != nil {
			return err
		}
		id, _ := idOf(n)
		fmt.Fprintln(w, cl.NodeStates[id-1])
	case "CLUSTERNAME":
		fmt.Fprintln(w, cl.ClusterName)
	case "ALL_RESOURCEGROUPS":
		printValues(w, "STRINGARRAY", cl.ResourceGroups)
	case "ALL_RESOURCETYPES":
		printValues(w, "STRINGARRAY", cl.ResourceTypes)
	case "SYSLOG_FACILITY":
		fmt.Fprintln(w, cl.SyslogFacility)
	default:
		return schaErr(api.SchaTag, "unknown optag %s", tag)
	}
	return nil
}

// ControlOps are the scha_control optags.
var ControlOps = []string{"GIVEOVER", "RESTART", "RESOURCE_RESTART", "RESOURCE_IS_RESTARTED",
	"CHECK_GIVEOVER", "CHECK_RESTART", "IGNORE_FAILED_START"}

func schaControl(ctx context.Context, args []string) error {
	a, err := parseScha(args, "O:G:R:Z:", "OGR")
	if err != nil {
		return err
	}
	op := a.optag()
	if !slices.Contains(ControlOps, op) {
		return schaErr(api.SchaTag, "unknown optag %s (use one of %s)", op, strings.Join(ControlOps, ", "))
	}
	resp, err := client.New(client.Socket("")).Control(ctx, api.ControlRequest{Op: op, Group: a.vals['G'], Resource: a.vals['R']})
	if err != nil {
		return fromAPI(err, api.SchaRsrc)
	}
	if resp.Code != api.SchaNoErr {
		return &schaError{code: resp.Code, msg: resp.Message}
	}
	return nil
}

func schaSetStatus(ctx context.Context, args []string) error {
	a, err := parseScha(args, "R:G:s:m:Z:", "Rs")
	if err != nil {
		return err
	}
	if len(a.operands) > 0 {
		return schaErr(api.SchaInval, "unexpected argument %q", a.operands[0])
	}
	_, err = client.New(client.Socket("")).SetResourceStatus(ctx, a.vals['R'],
		api.StatusRequest{Group: a.vals['G'], Status: a.vals['s'], Message: a.vals['m']})
	if err != nil {
		return fromAPI(err, api.SchaRsrc)
	}
	return nil
}
