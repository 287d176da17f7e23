package batch

import (
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
)

// whereEqualities returns the equalities a where expression implies: for
// an expression that is `record.field == literal`, or a conjunction (&&,
// and) with such terms, each term's field and value. A record the
// expression selects holds every one of them, so an index on the field can
// narrow the candidates; the expression itself is still evaluated on each.
// A nil literal implies nothing (a missing field equals nil too).
func whereEqualities(src string) map[string]any {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil
	}
	out := map[string]any{}
	var walk func(n ast.Node)
	walk = func(n ast.Node) {
		b, ok := n.(*ast.BinaryNode)
		if !ok {
			return
		}
		switch b.Operator {
		case "&&", "and":
			walk(b.Left)
			walk(b.Right)
		case "==":
			field, ok := recordField(b.Left)
			lit, isLit := literal(b.Right)
			if !ok || !isLit {
				field, ok = recordField(b.Right)
				lit, isLit = literal(b.Left)
			}
			if ok && isLit {
				if prev, seen := out[field]; seen && !jsonEqual(prev, lit) {
					// Contradictory terms: leave the field to the expression.
					return
				}
				out[field] = lit
			}
		}
	}
	walk(tree.Node)
	return out
}

// recordField returns f for the node `record.f` (or `record["f"]`).
func recordField(n ast.Node) (string, bool) {
	m, ok := n.(*ast.MemberNode)
	if !ok || m.Optional || m.Method {
		return "", false
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok || id.Value != "record" {
		return "", false
	}
	s, ok := m.Property.(*ast.StringNode)
	if !ok {
		return "", false
	}
	return s.Value, true
}

// literal returns the JSON value of a string, number or boolean literal.
func literal(n ast.Node) (any, bool) {
	switch x := n.(type) {
	case *ast.StringNode:
		return x.Value, true
	case *ast.IntegerNode:
		return float64(x.Value), true
	case *ast.FloatNode:
		return x.Value, true
	case *ast.BoolNode:
		return x.Value, true
	}
	return nil, false
}
