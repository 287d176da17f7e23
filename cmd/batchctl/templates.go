package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/batchworks/batch"
)

var templateKind = newKind("template", "templates", "TEMPLATE_ID", "name",
	[]any{"ID", "NAME", "PARAMETERS", "OPERATIONS", "DESCRIPTION"},
	func(x *batch.Template) []any {
		names := make([]string, len(x.Parameters))
		for i, p := range x.Parameters {
			names[i] = p.Name
			if p.Required {
				names[i] += "*"
			}
		}
		return []any{x.ID, x.Name, strings.Join(names, ","), len(x.Operations), x.Description}
	},
	func(t *tableWriter, x *batch.Template) {
		t.kv("Template", x.ID)
		t.kv("Name", x.Name)
		t.kv("Description", x.Description)
		t.kv("Created", x.CreatedAt)
		t.kv("Updated", x.UpdatedAt)
		ops := make([]string, len(x.Operations))
		for i, op := range x.Operations {
			ops[i] = strings.TrimSpace(op.Type + " " + op.Resource)
		}
		t.kv("Operations", strings.Join(ops, "; "))
		if len(x.Parameters) > 0 {
			t.blank()
			t.row("PARAMETER", "TYPE", "REQUIRED", "DEFAULT", "ENUM", "DESCRIPTION")
			for _, p := range x.Parameters {
				var def, enum string
				if p.Default != nil {
					def = jsonText(p.Default)
				}
				if p.Enum != nil {
					enum = string(marshalJSON(p.Enum))
				}
				t.row(p.Name, p.Type, p.Required, def, enum, p.Description)
			}
		}
	})

func (a *app) templateCommand() *cobra.Command {
	var params []string
	var sf submitFlags
	run := &cobra.Command{
		Use:   "run TEMPLATE [--param NAME=VALUE ...]",
		Short: "Submit a job from a template (by id or name) with parameters",
		Long: `Submit a job from a template, named by its id or its name. Each --param NAME=VALUE
sets a parameter; the value is read as the template declares the parameter
(integer, number, boolean, array and object values as JSON, the rest as text).
--wait follows the job as "submit --wait" does.`,
		Example:           `  batchctl template run bulk_field_update --param status=active --param crop_type=rice --wait`,
		Args:              argNames("TEMPLATE"),
		ValidArgsFunction: a.completion(templateKind),
		RunE: func(cmd *cobra.Command, args []string) error {
			pairs, err := splitParams(params)
			if err != nil {
				return err
			}
			tmpl, err := a.findTemplate(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			values, err := templateParams(tmpl, pairs)
			if err != nil {
				return err
			}
			body := marshalJSON(map[string]any{"batch": map[string]any{"template_id": tmpl.ID, "parameters": values}})
			return a.submit(cmd.Context(), body, sf)
		},
	}
	run.Flags().StringArrayVarP(&params, "param", "p", nil, "a parameter as NAME=VALUE (repeatable)")
	sf.register(run)
	return group("template", "Manage batch templates and run them", append(a.crudCommands(templateKind), run)...)
}

// findTemplate returns the template with id or name ref. A name must be
// unique among the caller's templates.
func (a *app) findTemplate(ctx context.Context, ref string) (*batch.Template, error) {
	var t batch.Template
	_, err := a.api.get(ctx, templateKind.path(ref), nil, &t)
	if err == nil || !isNotFound(err) {
		return &t, err
	}
	var found []batch.Template
	q := url.Values{"limit": {"1000"}}
	for {
		var page batch.TemplatePage
		if _, err := a.api.get(ctx, templateKind.path(""), q, &page); err != nil {
			return nil, err
		}
		for _, x := range page.Items {
			if x.Name == ref {
				found = append(found, *x)
			}
		}
		if page.NextCursor == "" {
			break
		}
		q.Set("cursor", page.NextCursor)
	}
	switch len(found) {
	case 0:
		return nil, &apiError{Status: http.StatusNotFound, Code: string(batch.CodeNotFound), Message: "no template with id or name " + strconv.Quote(ref)}
	case 1:
		return &found[0], nil
	}
	ids := make([]string, len(found))
	for i, x := range found {
		ids[i] = x.ID
	}
	return nil, usageErrorf("%d templates are named %q (%s); give its id", len(found), ref, strings.Join(ids, ", "))
}

// splitParams reads NAME=VALUE pairs; a later value of a name wins.
func splitParams(pairs []string) ([][2]string, error) {
	out := make([][2]string, 0, len(pairs))
	for _, pair := range pairs {
		name, value, ok := strings.Cut(pair, "=")
		if !ok || name == "" {
			return nil, usageErrorf("--param %q: write NAME=VALUE", pair)
		}
		out = append(out, [2]string{name, value})
	}
	return out, nil
}

// templateParams types each value as the template declares its parameter.
func templateParams(t *batch.Template, pairs [][2]string) (map[string]any, error) {
	types := map[string]string{}
	for _, p := range t.Parameters {
		types[p.Name] = p.Type
	}
	out := make(map[string]any, len(pairs))
	for _, p := range pairs {
		v, err := paramValue(types[p[0]], p[1])
		if err != nil {
			return nil, usageErrorf("--param %s: %v", p[0], err)
		}
		out[p[0]] = v
	}
	return out, nil
}

// paramValue converts a command-line value to a parameter of type typ.
// An undeclared parameter is sent as text; the server says it is unknown.
func paramValue(typ, s string) (any, error) {
	switch typ {
	case "integer":
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not an integer", s)
		}
		return n, nil
	case "number":
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", s)
		}
		return f, nil
	case "boolean":
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not true or false", s)
		}
		return b, nil
	case "array", "object":
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return nil, fmt.Errorf("an %s is written as JSON: %v", typ, err)
		}
		return v, nil
	}
	return s, nil
}
