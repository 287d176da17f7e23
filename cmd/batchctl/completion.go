package main

import (
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/batchworks/batch"
)

// Completions ask the server for ids. cobra's "completion" command writes
// the shell scripts that call them.

// completeJobs completes a job id with the newest jobs, showing their
// status and type.
func (a *app) completeJobs(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 || a.setup(cmd) != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var page batch.JobPage
	if _, err := a.api.get(cmd.Context(), "/jobs", url.Values{"limit": {"100"}}, &page); err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	out := make([]string, 0, len(page.Items))
	for _, j := range page.Items {
		out = append(out, fmt.Sprintf("%s\t%s %s", j.ID, j.Status, j.Type))
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveKeepOrder
}

// completeObjects completes the first argument with the ids of kind's
// objects, showing their label.
func (a *app) completeObjects(k *objectKind) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveDefault // a FILE argument
		}
		if a.setup(cmd) != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		raw, err := a.api.get(cmd.Context(), k.path(""), url.Values{"limit": {"100"}}, nil)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var page map[string][]map[string]any
		_ = json.Unmarshal(raw, &page)
		var out []string
		for _, o := range page[k.plural] {
			id, _ := o["id"].(string)
			label, _ := o[k.label].(string)
			out = append(out, id+"\t"+label)
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
