package batch

import (
	"context"
	"fmt"
	"time"
)

// DryRunSamples is how many records a dry run shows per operation, and
// DryRunErrors how many validation failures it lists per operation.
const (
	DryRunSamples = 10
	DryRunErrors  = 100
)

// DryRun is what a batch would do if it were submitted now: see
// [Engine.DryRun].
type DryRun struct {
	Operations []DryRunOperation `json:"operations"`
	// EstimatedDuration is the operations' estimates added up.
	EstimatedDuration Duration `json:"estimated_duration"`
}

// DryRunOperation is what one operation of a batch would do.
type DryRunOperation struct {
	OperationIndex int    `json:"operation_index"`
	Type           string `json:"type"`
	Resource       string `json:"resource,omitempty"`
	// Items is how many items the operation would have: the records it
	// selects right now, or the records it creates or imports.
	Items int64 `json:"items"`
	// Samples are the first items (up to [DryRunSamples]), each record as
	// it is and as it would become.
	Samples []DryRunSample `json:"samples"`
	// ValidationFailures counts the items strict validation would fail;
	// Errors lists the first [DryRunErrors] of them, as the job would.
	ValidationFailures int64       `json:"validation_failures"`
	Errors             []ItemError `json:"errors,omitempty"`
	// EstimatedDuration is Items at the engine's recent rate for the
	// operation type (its per-item estimate when none ran yet).
	EstimatedDuration Duration `json:"estimated_duration"`
}

// DryRunSample is one item of a dry run. Before is the record as it is
// (null when it does not exist yet), After as it would become (null when
// it would be deleted). Custom operations show their items' records as
// their plans give them.
type DryRunSample struct {
	ResourceID string `json:"resource_id,omitempty"`
	Before     Record `json:"before"`
	After      Record `json:"after"`
}

// DryRun checks b as [Engine.Submit] would and reports, without storing or
// changing anything, what each operation would do now: how many records
// it selects, up to [DryRunSamples] of them as they are and as they would
// become, the validation failures strict validation would report, and an
// estimate of its run time. Operations are looked at independently, each
// against the records as they are now (not as the operations before it
// would leave them). It reads the records in short transactions and stops
// with ctx's error when ctx ends. A rejected batch returns the
// INVALID_BATCH *Error Submit would.
func (e *Engine) DryRun(ctx context.Context, b *Batch) (*DryRun, error) {
	return e.dryRun(ctx, b, false)
}

// dryRun is DryRun; reverting allows revert operations.
func (e *Engine) dryRun(ctx context.Context, b *Batch, reverting bool) (*DryRun, error) {
	if b == nil {
		return nil, invalidBatch([]Detail{{Field: "batch", Code: DetailRequired, Message: "a batch is required"}})
	}
	if e.isClosed() {
		return nil, ErrClosed
	}
	nb, plans, err := e.checkPlans(ctx, b)
	if err != nil {
		return nil, err
	}
	var d details
	for i, op := range nb.Operations {
		if op.Type == OpRevert && !reverting {
			d.add(fmt.Sprintf("operations[%d].type", i), DetailInvalidOperation, "revert operations are made by reverting a job")
		}
	}
	if err := invalidBatch(d.list); err != nil {
		return nil, err
	}
	out := &DryRun{Operations: make([]DryRunOperation, len(plans))}
	var base int64
	for i, p := range plans {
		spec := &nb.Operations[i]
		op := &out.Operations[i]
		op.OperationIndex, op.Type, op.Resource, op.Samples = i, spec.Type, spec.Resource, []DryRunSample{}
		if err := e.dryRunOp(ctx, op, p, base); err != nil {
			return nil, err
		}
		op.EstimatedDuration = Duration(displayRound(e.rate(spec.Type) * time.Duration(op.Items)))
		out.EstimatedDuration += op.EstimatedDuration
		base += op.Items
	}
	return out, nil
}

// dryRunOp fills in one operation; base is the index of its first item.
func (e *Engine) dryRunOp(ctx context.Context, op *DryRunOperation, p *Plan, base int64) error {
	look := func(it *Item, before Record) error {
		if n := len(op.Samples); n < DryRunSamples {
			s := DryRunSample{ResourceID: it.ResourceID, Before: before, After: it.Record}
			if p.sample != nil {
				var err error
				if s.Before, s.After, err = p.sample(ctx, it); err != nil {
					return err
				}
			} else if p.Resource != nil {
				s.After = nil
				if p.preview != nil {
					after, err := p.preview(before)
					if err == nil {
						s.After = after
					}
				}
			}
			op.Samples = append(op.Samples, s)
		}
		if p.Validate == nil {
			return nil
		}
		if err := safeCall(ctx, it, p.Validate); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			op.ValidationFailures++
			if len(op.Errors) < DryRunErrors {
				code, msg, _ := classify(err)
				if CodeOf(err) == "" {
					code = CodeValidation
				}
				op.Errors = append(op.Errors, ItemError{ItemIndex: it.Index, BatchOperation: it.Operation, ResourceID: it.ResourceID,
					Error: ErrorBody{Code: code, Message: msg}, Attempts: 1, Status: itemFailed.String()})
			}
		}
		return nil
	}
	if p.Resource != nil {
		return p.Resource.Scan(ctx, p.Query, func(rec Record) error {
			it := Item{Index: base + op.Items, Operation: op.OperationIndex, Type: op.Type, ResourceID: rec.ID(), Record: rec}
			op.Items++
			return look(&it, rec)
		})
	}
	for j := range p.Count {
		if j%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		it, err := p.Item(j)
		if err != nil {
			return fmt.Errorf("batch: building item %d of operation %d: %w", j, op.OperationIndex, err)
		}
		it.Index, it.Operation, it.Type = base+j, op.OperationIndex, op.Type
		op.Items++
		var before Record
		if p.coll != nil && len(op.Samples) < DryRunSamples {
			if cur, err := p.coll.Get(ctx, it.ResourceID); err == nil {
				before = cur
			}
		}
		if err := look(&it, before); err != nil {
			return err
		}
	}
	return nil
}
