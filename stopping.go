package batch

import "context"

// stoppingKey carries, in an item's context, the channel closed when its
// job is asked to stop.
type stoppingKey struct{}

// Stopping returns a channel that is closed once the job whose item ctx
// belongs to has been asked to stop: paused, cancelled, failed by its
// policy, or stopped by [Engine.Close]. (A job timeout ends the item's
// context itself.) A pause lets the items
// in flight finish and does not cancel their context; an item that takes
// long can watch this channel to stop sooner. Returning nil then completes
// the item. Returning an error matching [context.Canceled] leaves it
// pending, no attempt spent, to run again from the start when the job
// resumes, as an item whose context a cancel or Close ended is. Any other
// error is an attempt that failed.
//
// Outside an item's context Stopping returns nil, a channel that is never
// closed.
func Stopping(ctx context.Context) <-chan struct{} {
	ch, _ := ctx.Value(stoppingKey{}).(<-chan struct{})
	return ch
}
