package routing

import (
	"fmt"
	"io"
	"strings"
)

// Walk calls fn for n and every route below it, depth first in configuration
// order, with the depth of each (0 for n).
func (n *Node) Walk(fn func(n *Node, depth int)) {
	n.walk(fn, 0)
}

func (n *Node) walk(fn func(*Node, int), depth int) {
	fn(n, depth)
	for _, c := range n.Children {
		c.walk(fn, depth+1)
	}
}

// WriteTree writes the routing tree for people, one route a line, in the
// shape of `amtool config routes show`:
//
//	default-route  receiver: ops
//	├── {team="db"}  continue: true  receiver: db
//	│   └── {severity="page"}  receiver: db-page
//	└── {team="web"}  receiver: web
func (r *Router) WriteTree(w io.Writer) error {
	var b strings.Builder
	b.WriteString("default-route")
	writeNodeAttrs(&b, r.root)
	writeChildren(&b, r.root, "")
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("write routing tree: %w", err)
	}
	return nil
}

func writeChildren(b *strings.Builder, n *Node, indent string) {
	for i, c := range n.Children {
		branch, next := "├── ", "│   "
		if i == len(n.Children)-1 {
			branch, next = "└── ", "    "
		}
		b.WriteString(indent)
		b.WriteString(branch)
		b.WriteString("{" + strings.Join(c.Matchers, ",") + "}")
		writeNodeAttrs(b, c)
		writeChildren(b, c, indent+next)
	}
}

func writeNodeAttrs(b *strings.Builder, n *Node) {
	if n.Continue {
		b.WriteString("  continue: true")
	}
	if len(n.ActiveTimeIntervals) > 0 {
		b.WriteString("  active: " + strings.Join(n.ActiveTimeIntervals, ","))
	}
	if len(n.MuteTimeIntervals) > 0 {
		b.WriteString("  mute: " + strings.Join(n.MuteTimeIntervals, ","))
	}
	b.WriteString("  receiver: ")
	b.WriteString(n.Receiver)
	b.WriteByte('\n')
}
