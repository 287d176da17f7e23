package batch

import "context"

// Middleware wraps every try of every item's Run, like River's worker
// middleware: logging, tracing, metrics, turning panics into errors. It
// calls next to run the item (through the middleware after it) and returns
// next's error or its own. Set them in [Options].Middleware; the first is
// the outermost. A panic in a middleware fails the item like a panic in
// Run does.
type Middleware interface {
	RunItem(ctx context.Context, item *Item, next func(ctx context.Context) error) error
}

// MiddlewareFunc adapts a function to [Middleware].
type MiddlewareFunc func(ctx context.Context, item *Item, next func(ctx context.Context) error) error

// RunItem calls f.
func (f MiddlewareFunc) RunItem(ctx context.Context, item *Item, next func(ctx context.Context) error) error {
	return f(ctx, item, next)
}

// runItemWith runs one try of an item's run through the engine's
// middleware.
func (e *Engine) runItemWith(ctx context.Context, it *Item, run func(context.Context, *Item) error) error {
	next := func(ctx context.Context) error { return run(ctx, it) }
	for i := len(e.opts.Middleware) - 1; i >= 0; i-- {
		m, inner := e.opts.Middleware[i], next
		next = func(ctx context.Context) error { return m.RunItem(ctx, it, inner) }
	}
	return next(ctx)
}
