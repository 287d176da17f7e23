package main

import (
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
)

// objectKind describes one kind of object the API keeps (jobs, templates,
// schedules, webhooks): where it lives, how its commands name it and how a
// table draws it. Templates, schedules and webhooks are managed the same
// way: list, get, create, update, delete.
type objectKind struct {
	name   string // "template": the command and the request wrapper key
	plural string // "templates": the path and the list key
	idArg  string // "TEMPLATE_ID"
	// label names an object in completions ("name", "url").
	label string
	// complete, if set, completes the kind's ids instead of
	// completeObjects.
	complete func(a *app) cobra.CompletionFunc
	// listTable draws a list; showTable draws one object.
	listTable func(t *tableWriter, items []json.RawMessage)
	showTable func(t *tableWriter, raw json.RawMessage)
}

// newKind describes a kind whose objects decode as T: a list is drawn as
// rows under header, one object by show.
func newKind[T any](name, plural, idArg, label string, header []any, row func(*T) []any, show func(*tableWriter, *T)) *objectKind {
	return &objectKind{
		name: name, plural: plural, idArg: idArg, label: label,
		listTable: func(t *tableWriter, items []json.RawMessage) { rows(t, items, header, row) },
		showTable: func(t *tableWriter, raw json.RawMessage) {
			var x T
			_ = json.Unmarshal(raw, &x)
			show(t, &x)
		},
	}
}

// path is the API path of the kind, or of one object of it.
func (k *objectKind) path(id string) string {
	if id == "" {
		return "/" + k.plural
	}
	return "/" + k.plural + "/" + url.PathEscape(id)
}

// completion completes the ids of k's objects.
func (a *app) completion(k *objectKind) cobra.CompletionFunc {
	if k.complete != nil {
		return k.complete(a)
	}
	return a.completeObjects(k)
}

// show prints an answer of the API that holds one object of k, or returns
// the request's error.
func (a *app) show(k *objectKind, raw json.RawMessage, err error) error {
	if err != nil {
		return err
	}
	return a.print(raw, func(t *tableWriter) { k.showTable(t, raw) })
}

// onObject is the command "verb ID" on one object of k; run gets the id.
func (a *app) onObject(k *objectKind, verb, short string, run func(cmd *cobra.Command, id string) error) *cobra.Command {
	return &cobra.Command{
		Use:               verb + " " + k.idArg,
		Short:             short,
		Args:              argNames(k.idArg),
		ValidArgsFunction: a.completion(k),
		RunE: func(cmd *cobra.Command, args []string) error {
			return run(cmd, args[0])
		},
	}
}

// requestCommand is a command that sends method to an object's path with
// suffix ("", "/pause") and prints the object the API answers.
func (a *app) requestCommand(k *objectKind, verb, short, method, suffix string) *cobra.Command {
	return a.onObject(k, verb, short, func(cmd *cobra.Command, id string) error {
		raw, err := a.api.send(cmd.Context(), method, k.path(id)+suffix, nil, nil, nil)
		return a.show(k, raw, err)
	})
}

// deleteCommand deletes an object of k.
func (a *app) deleteCommand(k *objectKind, short string) *cobra.Command {
	return a.onObject(k, "delete", short, func(cmd *cobra.Command, id string) error {
		if _, err := a.api.do(cmd.Context(), http.MethodDelete, k.path(id), nil, nil, nil); err != nil {
			return err
		}
		return a.print(marshalJSON(map[string]any{"deleted": id}), func(t *tableWriter) {
			t.row("deleted " + k.name + " " + id)
		})
	})
}

// pagesCommand lists a paged collection of an object: GET <object>/<name>,
// its items under the key name.
func (a *app) pagesCommand(k *objectKind, name, short string, table func(*tableWriter, []json.RawMessage)) *cobra.Command {
	var pf pageFlags
	cmd := a.onObject(k, name, short, func(cmd *cobra.Command, id string) error {
		return a.listPages(cmd.Context(), k.path(id)+"/"+name, url.Values{}, pf, name, table)
	})
	pf.register(cmd.Flags())
	return cmd
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
		ValidArgsFunction: a.completion(k),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.sendObject(cmd, k, http.MethodPut, args[0], args[1])
		},
	}
	return []*cobra.Command{
		list,
		a.requestCommand(k, "get", "Show a "+k.name, http.MethodGet, ""),
		create, update,
		a.deleteCommand(k, "Delete a "+k.name),
	}
}

// sendObject creates (id "") or replaces an object from a file and prints
// the server's answer.
func (a *app) sendObject(cmd *cobra.Command, k *objectKind, method, id, file string) error {
	doc, err := a.readInput(file)
	if err != nil {
		return err
	}
	raw, err := a.api.send(cmd.Context(), method, k.path(id), nil, wrap(k.name, unwrapObject(doc, k.name)), nil)
	return a.show(k, raw, err)
}

// objectAction is a POST /<plural>/{id}/<verb> command (pause, resume,
// cancel) that prints the object the API answers.
func (a *app) objectAction(k *objectKind, verb, short string) *cobra.Command {
	return a.requestCommand(k, verb, short, http.MethodPost, "/"+verb)
}
