package manifest

import (
	"fmt"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
)

// duplicateKeys reports every key given twice in one mapping, at any depth
// below n, with both lines. Aliases are not followed: the value they name
// is checked where it is written.
func duplicateKeys(file string, n *yamlv3.Node, path string) Errors {
	var errs Errors
	var visit func(n *yamlv3.Node, path string, depth int)
	visit = func(n *yamlv3.Node, path string, depth int) {
		if depth > 10000 {
			return
		}
		switch n.Kind {
		case yamlv3.MappingNode:
			first := map[string]int{}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if k.Kind == yamlv3.ScalarNode && k.Tag != "!!merge" {
					kp := join(path, k.Value)
					if line, dup := first[k.Value]; dup {
						errs = append(errs, &Error{File: file, Line: k.Line, Path: kp, Msg: fmt.Sprintf("duplicate key (first at line %d)", line)})
					} else {
						first[k.Value] = k.Line
					}
					visit(v, kp, depth+1)
					continue
				}
				visit(v, path, depth+1)
			}
		case yamlv3.SequenceNode:
			for i, e := range n.Content {
				visit(e, fmt.Sprintf("%s[%d]", path, i), depth+1)
			}
		}
	}
	visit(n, path, 0)
	return errs
}

// isList reports whether a document is a List (what kubectl get -o yaml
// prints for several objects) or a typed list such as NetworkPolicyList.
func isList(root *yamlv3.Node) bool {
	kind := scalarAt(root, "kind")
	return kind == "List" || (strings.HasSuffix(kind, "List") && len(kind) > len("List"))
}

// listFields are the fields of a List besides its items.
var listFields = map[string]bool{"apiVersion": true, "kind": true, "metadata": true, "items": true}

// listMetadata are the fields of a List's metadata.
var listMetadata = map[string]bool{"resourceVersion": true, "continue": true, "selfLink": true, "remainingItemCount": true}

// expandList returns the items of a List as documents of their own, whose
// problems are reported under items[N]. An item of a typed list (kind
// NetworkPolicyList) that names no kind or apiVersion takes the list's.
func expandList(file string, root *yamlv3.Node, index int) ([]*Document, Errors) {
	var errs Errors
	listKind, listVersion := scalarAt(root, "kind"), scalarAt(root, "apiVersion")
	var items *yamlv3.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch {
		case !listFields[k.Value]:
			errs = append(errs, &Error{File: file, Line: k.Line, Path: k.Value, Msg: fmt.Sprintf("unknown field %q of a %s (want apiVersion, kind, metadata and items)", k.Value, listKind)})
		case k.Value == "items":
			items = v
		case k.Value == "metadata" && v.Kind == yamlv3.MappingNode:
			for j := 0; j+1 < len(v.Content); j += 2 {
				if mk := v.Content[j]; !listMetadata[mk.Value] {
					errs = append(errs, &Error{File: file, Line: mk.Line, Path: "metadata." + mk.Value, Msg: fmt.Sprintf("unknown field %q of a list's metadata", mk.Value)})
				}
			}
		case k.Value == "metadata" && !isNull(v):
			errs = append(errs, &Error{File: file, Line: v.Line, Path: "metadata", Msg: "expected a mapping, got " + describe(v)})
		}
	}
	if items == nil || isNull(items) {
		return nil, errs
	}
	if items.Kind != yamlv3.SequenceNode {
		return nil, append(errs, &Error{File: file, Line: items.Line, Path: "items", Msg: "expected a list, got " + describe(items)})
	}
	itemKind := ""
	if listKind != "List" {
		itemKind = strings.TrimSuffix(listKind, "List")
	}
	var docs []*Document
	for i, it := range items.Content {
		prefix := fmt.Sprintf("items[%d]", i)
		if it.Kind != yamlv3.MappingNode {
			errs = append(errs, &Error{File: file, Line: it.Line, Path: prefix, Msg: "an item must be a mapping with apiVersion and kind, got " + describe(it)})
			continue
		}
		if isList(it) {
			line := it.Line
			for j := 0; j+1 < len(it.Content); j += 2 {
				if it.Content[j].Value == "kind" {
					line = it.Content[j].Line
				}
			}
			errs = append(errs, &Error{File: file, Line: line, Path: prefix + ".kind", Msg: "a List inside a List is not supported"})
			continue
		}
		if itemKind != "" {
			setDefault(it, "kind", itemKind)
			setDefault(it, "apiVersion", listVersion)
		}
		d, err := newDocument(file, it, index+len(docs), prefix)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		docs = append(docs, d)
	}
	return docs, errs
}

// setDefault adds key: value to a mapping that lacks key.
func setDefault(m *yamlv3.Node, key, value string) {
	if value == "" || child(m, key) != nil {
		return
	}
	k := &yamlv3.Node{Kind: yamlv3.ScalarNode, Tag: "!!str", Value: key, Line: m.Line, Column: m.Column}
	v := &yamlv3.Node{Kind: yamlv3.ScalarNode, Tag: "!!str", Value: value, Line: m.Line, Column: m.Column}
	m.Content = append([]*yamlv3.Node{k, v}, m.Content...)
}

// under reports whether path is prefix or below it.
func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+".") || strings.HasPrefix(path, prefix+"[")
}

// problemsUnder returns the problems below prefix.
func problemsUnder(errs Errors, prefix string) Errors {
	var out Errors
	for _, e := range errs {
		if under(e.Path, prefix) {
			out = append(out, e)
		}
	}
	return out
}

// problemsOutsideItems returns the problems of a List that are not in an
// item.
func problemsOutsideItems(errs Errors) Errors {
	var out Errors
	for _, e := range errs {
		if !strings.HasPrefix(e.Path, "items[") {
			out = append(out, e)
		}
	}
	return out
}
