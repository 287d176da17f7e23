package batch

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// This file holds the tenancy rules: administrators, the Authorize hook
// and cleanup by a plain principal. The package documentation ("Tenancy")
// states the model.

// adminKey is the context key of the administrator mark.
type adminKey struct{}

// WithAdmin returns a context whose principal is an administrator.
func WithAdmin(ctx context.Context) context.Context {
	return context.WithValue(ctx, adminKey{}, true)
}

// markedAdmin reports whether ctx was marked with [WithAdmin].
func markedAdmin(ctx context.Context) bool {
	ok, _ := ctx.Value(adminKey{}).(bool)
	return ok
}

// IsAdmin reports whether ctx acts as an administrator: it was marked with
// [WithAdmin], or it names no principal (the embedding program itself).
func IsAdmin(ctx context.Context) bool {
	return markedAdmin(ctx) || PrincipalFrom(ctx) == ""
}

// CodeForbidden: the principal may not do what it asked (a maintenance
// operation without being an administrator, or a resource that
// [Options].Authorize refused).
const CodeForbidden Code = "FORBIDDEN"

// Access is what [Options].Authorize is asked about: a principal running
// one operation of a batch on a resource.
type Access struct {
	// Principal is the job's owner ("" for the embedding program).
	Principal string
	// Admin is whether the principal is an administrator.
	Admin bool
	// Operation is the operation type, Resource the resource it names ("" for
	// operations without one) and Index its position in the batch.
	Operation string
	Resource  string
	Index     int
}

// adminOnly are the operations that act on the whole store.
var adminOnly = map[string]bool{OpBackup: true, OpRestore: true, OpOptimize: true}

// submitterKey is the context key of the owner a batch is checked for.
type submitterKey struct{}

// submitterInfo is who a batch is checked for.
type submitterInfo struct {
	owner string
	admin bool
}

// submitter returns ctx marked with the owner of the job being submitted,
// and whether that owner is an administrator: when the context says so for
// that owner, or when there is no owner (the embedding program itself).
func submitter(ctx context.Context, owner string) (context.Context, bool) {
	admin := owner == "" || (markedAdmin(ctx) && PrincipalFrom(ctx) == owner)
	return context.WithValue(ctx, submitterKey{}, submitterInfo{owner: owner, admin: admin}), admin
}

// submitterOf is who ctx checks a batch for: the one set by submitter, else
// the context's principal.
func submitterOf(ctx context.Context) (owner string, admin bool) {
	if s, ok := ctx.Value(submitterKey{}).(submitterInfo); ok {
		return s.owner, s.admin
	}
	return PrincipalFrom(ctx), IsAdmin(ctx)
}

// authorize checks every operation of b for the job's owner (see
// submitter): the administrator-only operations, then [Options].Authorize.
func (e *Engine) authorize(ctx context.Context, b *Batch) error {
	owner, admin := submitterOf(ctx)
	for i, op := range b.Operations {
		if adminOnly[op.Type] && !admin {
			return &Error{Code: CodeForbidden, Message: fmt.Sprintf("operations[%d]: %s acts on the whole store and needs an administrator", i, op.Type)}
		}
		if e.opts.Authorize == nil {
			continue
		}
		a := Access{Principal: owner, Admin: admin, Operation: op.Type, Resource: op.Resource, Index: i}
		if err := e.opts.Authorize(ctx, a); err != nil {
			return &Error{Code: CodeForbidden, Message: fmt.Sprintf("operations[%d]: %v", i, errMessage(err)), Err: err}
		}
	}
	return nil
}

// jobOwner returns the owner of job id and whether it was submitted by an
// administrator.
func (e *Engine) jobOwner(id string) (owner string, admin bool, err error) {
	seq, ok := parseJobID(id)
	if !ok {
		return "", false, notFound("job", id)
	}
	err = e.store.View(func(tx Tx) error {
		rec, err := getJob(tx, seq)
		if err != nil {
			return err
		}
		owner, admin = rec.Owner, rec.Admin || rec.Owner == ""
		return nil
	})
	return owner, admin, err
}

// cleanupOwn is [Engine.Cleanup] for a plain principal: only owner's own
// finished jobs (with their items, errors and artifacts) go; deliveries and
// the audit log are left to administrators and the retention loop.
func (e *Engine) cleanupOwn(ctx context.Context, owner string, cutoff time.Time) (*CleanupStats, error) {
	st := &CleanupStats{}
	ids, err := e.finishedBefore(cutoff, owner)
	if err != nil {
		return st, err
	}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		switch err := e.Delete(ctx, id); {
		case err == nil:
			st.Jobs++
		case errors.Is(err, ErrNotFound): // deleted meanwhile
		default:
			return st, err
		}
	}
	return st, nil
}
