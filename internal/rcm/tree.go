package rcm

import (
	"fmt"
	"sort"
	"strings"
)

// CheckName says whether name is a resource name the engine accepts: an
// absolute path without empty, "." or ".." components, or an abstract
// name made of non-empty components.
func CheckName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty resource name", ErrInvalid)
	}
	rest := strings.TrimPrefix(name, "/")
	if rest == "" {
		return nil // "/": registering it is a no-op, offlining it conflicts with everything
	}
	for _, c := range strings.Split(rest, "/") {
		if c == "" || c == "." || c == ".." {
			return fmt.Errorf("%w: resource name %q has an empty, . or .. component", ErrInvalid, name)
		}
	}
	if strings.ContainsAny(name, "\x00\n") {
		return fmt.Errorf("%w: resource name %q has a control character", ErrInvalid, name)
	}
	return nil
}

// related reports whether a and b are the same resource or one contains
// the other.
func related(a, b string) bool {
	return a == b || within(a, b) || within(b, a)
}

// within reports whether child lies strictly below parent.
func within(child, parent string) bool {
	if parent == "/" {
		return strings.HasPrefix(child, "/") && child != "/"
	}
	return len(child) > len(parent) && strings.HasPrefix(child, parent) && child[len(parent)] == '/'
}

// node is one component of the name tree.
type node struct {
	name     string // full name
	key      string // the last component
	parent   *node
	children map[string]*node
	sorted   []string // child keys in order; nil when stale
	regs     []*reg
}

// reg is one client's registration on one name, and its state there.
type reg struct {
	c     *clientEntry
	name  string // as the client wrote it, and is called with
	at    string // the node it sits on (the canonical name)
	kind  Kind
	state State
}

type tree struct {
	dev, abs node // the device root "/" and the abstract root ""
}

func newTree() *tree {
	return &tree{dev: node{name: "/"}, abs: node{name: ""}}
}

// find returns the node of name, creating it (and its parents) if create.
func (t *tree) find(name string, create bool) *node {
	n := &t.abs
	rest := name
	if strings.HasPrefix(name, "/") {
		n, rest = &t.dev, name[1:]
	}
	if rest == "" {
		return n
	}
	full := n.name
	for _, c := range strings.Split(rest, "/") {
		child := n.children[c]
		if child == nil {
			if !create {
				return nil
			}
			if n.children == nil {
				n.children = map[string]*node{}
			}
			switch full {
			case "", "/":
				full += c
			default:
				full += "/" + c
			}
			child = &node{name: full, key: c, parent: n}
			n.children[c] = child
			n.sorted = nil
		}
		full = child.name
		n = child
	}
	return n
}

// walk visits the subtree of n, children first and in name order, the
// order in which clients are asked (a partition before its disk).
func (n *node) walk(f func(*node)) {
	if len(n.children) > 0 {
		if n.sorted == nil {
			n.sorted = make([]string, 0, len(n.children))
			for k := range n.children {
				n.sorted = append(n.sorted, k)
			}
			sort.Strings(n.sorted)
		}
		for _, k := range n.sorted {
			n.children[k].walk(f)
		}
	}
	f(n)
}

// prune removes n and its parents while they hold nothing.
func (n *node) prune() {
	for n.parent != nil && len(n.regs) == 0 && len(n.children) == 0 {
		delete(n.parent.children, n.key)
		n.parent.sorted = nil
		n = n.parent
	}
}
