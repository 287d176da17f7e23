package batch

import "context"

// stoppingKey carries, in an item's context, the channel closed when its
// job is asked to stop.
type stoppingKey struct{}

// Stopping returns a channel that is closed once the job whose item ctx
// belongs to has been asked to stop: paused, cancelled, failed by its
// policy or timeout, or stopped by [Engine.Close]. A pause lets the items
// in flight finish and does not cancel their context; an item that takes
// long can watch this channel to reach a safe point sooner. What it then
// returns is recorded as usual: nil completes the item, and a retryable
// error leaves it pending, one attempt spent, to run again on resume.
//
// Outside an item's context Stopping returns nil, a channel that is never
// closed.
func Stopping(ctx context.Context) <-chan struct{} {
	ch, _ := ctx.Value(stoppingKey{}).(<-chan struct{})
	return ch
}
