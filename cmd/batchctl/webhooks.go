package main

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/batchworks/batch"
)

var webhookKind = newKind("webhook", "webhooks", "WEBHOOK_ID", "url",
	[]any{"ID", "URL", "EVENTS", "DESCRIPTION"},
	func(x *batch.Webhook) []any {
		return []any{x.ID, x.URL, eventsText(x.Events), x.Description}
	},
	func(t *tableWriter, x *batch.Webhook) {
		t.kv("Webhook", x.ID)
		t.kv("URL", x.URL)
		t.kv("Events", eventsText(x.Events))
		t.kv("Description", x.Description)
		t.kv("Secret", x.Secret)
		t.kv("Created", x.CreatedAt)
		t.kv("Updated", x.UpdatedAt)
	})

func eventsText(events []batch.EventType) string {
	if len(events) == 0 {
		return "all"
	}
	s := make([]string, len(events))
	for i, e := range events {
		s[i] = string(e)
	}
	return strings.Join(s, ",")
}

func (a *app) webhookCommand() *cobra.Command {
	cmds := a.crudCommands(webhookKind)
	// create also takes the webhook from flags.
	create := cmds[2]
	var hookURL, description string
	var events []string
	create.Use = "create [FILE|-] [--url URL --event TYPE ...]"
	create.Short = "Register a webhook from a file or from flags; prints its signing secret"
	create.Args = maxArgs(1)
	create.Flags().StringVar(&hookURL, "url", "", "the URL deliveries are POSTed to")
	create.Flags().StringSliceVar(&events, "event", nil, "an event type to deliver (repeatable; default all): "+webhookEventsText())
	create.Flags().StringVar(&description, "description", "", "what the webhook is for")
	create.RunE = func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) == 1 && hookURL != "":
			return usageErrorf("give the webhook as FILE or as --url, not both")
		case len(args) == 1:
			return a.sendObject(cmd, webhookKind, http.MethodPost, "", args[0])
		case hookURL == "":
			return usageErrorf("webhook create needs FILE or --url")
		}
		hook := map[string]any{"url": hookURL}
		if len(events) > 0 {
			hook["events"] = events
		}
		if description != "" {
			hook["description"] = description
		}
		raw, err := a.api.send(cmd.Context(), http.MethodPost, webhookKind.path(""), nil, marshalJSON(map[string]any{"webhook": hook}), nil)
		return a.show(webhookKind, raw, err)
	}

	deliveries := a.pagesCommand(webhookKind, "deliveries", "List a webhook's deliveries with their last status", func(t *tableWriter, items []json.RawMessage) {
		rows(t, items, []any{"ID", "EVENT", "JOB", "STATUS", "ATTEMPTS", "HTTP", "ERROR"}, func(d *batch.Delivery) []any {
			return []any{d.ID, d.Event, d.JobID, d.Status, d.Attempts, d.LastStatusCode, d.LastError}
		})
	})
	return group("webhook", "Manage webhooks that receive job events", append(cmds, deliveries)...)
}

func webhookEventsText() string {
	var s []string
	for _, e := range batch.WebhookEvents() {
		s = append(s, string(e))
	}
	return strings.Join(s, ", ")
}
