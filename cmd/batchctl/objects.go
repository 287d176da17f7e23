package main

import (
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
)

// objectKind describes one kind of stored object the API manages the same
// way (templates, schedules, webhooks): list, get, create, update, delete.
type objectKind struct {
	name   string // "template": the command and the request wrapper key
	plural string // "templates": the path and the list key
	idArg  string // "TEMPLATE_ID"
	// label names an object in completions ("name", "url").
	label string
	// listTable draws a list; showTable draws one object.
	listTable func(t *tableWriter, items []json.RawMessage)
	showTable func(t *tableWriter, raw json.RawMessage)
}

// path is the API path of the kind, or of one object of it.
func (k *objectKind) path(id string) string {
	if id == "" {
		return "/" + k.plural
	}
	return "/" + k.plural + "/" + url.PathEscape(id)
}

// crudCommands returns list, get, create, update and delete for kind.
func (a *app) crudCommands(k *objectKind) []*cobra.Command {
	var pf pageFlags
	list := &cobra.Command{
		Use:   "list",
		Short: "List " + k.plural,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.listPages(cmd.Context(), k.path(""), url.Values{}, pf, k.plural, k.listTable)
		},
	}
	pf.register(list.Flags())

	get := &cobra.Command{
		Use:               "get " + k.idArg,
		Short:             "Show a " + k.name,
		Args:              argNames(k.idArg),
		ValidArgsFunction: a.completeObjects(k),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := a.api.get(cmd.Context(), k.path(args[0]), nil, nil)
			if err != nil {
				return err
			}
			return a.print(raw, func(t *tableWriter) { k.showTable(t, raw) })
		},
	}

	create := &cobra.Command{
		Use:   "create FILE|-",
		Short: "Create a " + k.name + " from a JSON or YAML file (- reads stdin)",
		Long: "Create a " + k.name + ". FILE holds it as JSON or YAML, either as the API's request body\n" +
			`{"` + k.name + `": {...}} or as the object itself; "-" reads stdin.`,
		Args: argNames("FILE|-"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.sendObject(cmd, k, http.MethodPost, "", args[0])
		},
	}

	update := &cobra.Command{
		Use:               "update " + k.idArg + " FILE|-",
		Short:             "Replace a " + k.name + " with the one in FILE",
		Args:              argNames(k.idArg, "FILE|-"),
		ValidArgsFunction: a.completeObjects(k),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.sendObject(cmd, k, http.MethodPut, args[0], args[1])
		},
	}

	del := &cobra.Command{
		Use:               "delete " + k.idArg,
		Short:             "Delete a " + k.name,
		Args:              argNames(k.idArg),
		ValidArgsFunction: a.completeObjects(k),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := a.api.do(cmd.Context(), http.MethodDelete, k.path(args[0]), nil, nil, nil); err != nil {
				return err
			}
			return a.print(marshalJSON(map[string]any{"deleted": args[0]}), func(t *tableWriter) {
				t.row("deleted " + k.name + " " + args[0])
			})
		},
	}
	return []*cobra.Command{list, get, create, update, del}
}

// sendObject creates (id "") or replaces an object from a file and prints
// the server's answer.
func (a *app) sendObject(cmd *cobra.Command, k *objectKind, method, id, file string) error {
	doc, err := a.readInput(file)
	if err != nil {
		return err
	}
	raw, err := a.api.send(cmd.Context(), method, k.path(id), nil, wrap(k.name, unwrapObject(doc, k.name)), nil)
	if err != nil {
		return err
	}
	return a.print(raw, func(t *tableWriter) { k.showTable(t, raw) })
}

// objectAction is a POST /<plural>/{id}/<verb> command (pause, resume).
func (a *app) objectAction(k *objectKind, verb, short string) *cobra.Command {
	return &cobra.Command{
		Use:               verb + " " + k.idArg,
		Short:             short,
		Args:              argNames(k.idArg),
		ValidArgsFunction: a.completeObjects(k),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := a.api.send(cmd.Context(), http.MethodPost, k.path(args[0])+"/"+verb, nil, nil, nil)
			if err != nil {
				return err
			}
			return a.print(raw, func(t *tableWriter) { k.showTable(t, raw) })
		},
	}
}
