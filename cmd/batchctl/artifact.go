package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/batchworks/batch"
)

func (a *app) artifactCommand() *cobra.Command {
	var out string
	get := &cobra.Command{
		Use:   "get JOB_ID NAME",
		Short: "Download an artifact of a job (to stdout, or to a file with -o)",
		Example: `  batchctl artifact get batch12 export-0.json -o fields.json
  batchctl artifact get batch12 report-1.csv | column -s, -t`,
		Args:              argNames("JOB_ID", "NAME"),
		ValidArgsFunction: a.completeArtifacts,
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := a.api.newRequest(cmd.Context(), http.MethodGet, jobPath(args[0], "/artifacts/"+url.PathEscape(args[1])), nil, nil)
			if err != nil {
				return err
			}
			req.Header.Set("Accept", "*/*")
			resp, err := a.api.http.Do(req)
			if err != nil {
				return wrapCtx(cmd.Context(), fmt.Errorf("GET %s: %w", req.URL.Redacted(), err))
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
				return decodeAPIError(resp, raw)
			}
			if out == "" || out == "-" {
				_, err := io.Copy(a.stdout, resp.Body)
				return wrapCtx(cmd.Context(), err)
			}
			n, err := writeFileAtomic(out, resp.Body)
			if err != nil {
				return wrapCtx(cmd.Context(), err)
			}
			fmt.Fprintf(a.stderr, "wrote %s (%d bytes)\n", out, n)
			return nil
		},
	}
	get.Flags().StringVarP(&out, "out", "o", "", "write the artifact to this file instead of stdout")

	list := a.onObject(jobKind, "list", "List the artifacts a job produced", func(cmd *cobra.Command, id string) error {
		var job batch.Job
		if _, err := a.api.get(cmd.Context(), jobPath(id, ""), nil, &job); err != nil {
			return err
		}
		arts := []*batch.Artifact{}
		for _, r := range job.Results {
			if r.Artifact != nil {
				arts = append(arts, r.Artifact)
			}
		}
		return a.print(marshalJSON(map[string]any{"artifacts": arts}), func(t *tableWriter) {
			t.row("NAME", "CONTENT TYPE", "SIZE", "URL")
			for _, x := range arts {
				t.row(x.Name, x.ContentType, x.Size, x.URL)
			}
		})
	})
	return group("artifact", "Download the files a job produced (exports, reports, backups)", get, list)
}

// writeFileAtomic writes r to path through a temporary file in the same
// directory, so a failed download never leaves a partial file behind.
func writeFileAtomic(path string, r io.Reader) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return 0, err
	}
	err = tmp.Chmod(0o644)
	var n int64
	if err == nil {
		n, err = io.Copy(tmp, r)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return 0, fmt.Errorf("writing %s: %w", path, err)
	}
	return n, nil
}

// completeArtifacts completes a job id, then the job's artifact names.
func (a *app) completeArtifacts(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) == 0 {
		return a.completeJobs(cmd, args, "")
	}
	if len(args) > 1 || a.setup(cmd) != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var job batch.Job
	raw, err := a.api.get(cmd.Context(), jobPath(args[0], ""), nil, &job)
	if err != nil || json.Unmarshal(raw, &job) != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, r := range job.Results {
		if r.Artifact != nil {
			names = append(names, r.Artifact.Name+"\t"+r.Artifact.ContentType)
		}
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}
