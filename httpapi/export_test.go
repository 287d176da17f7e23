package httpapi

// Routes returns the route patterns h registered, in order.
func Routes(h *Handler) []string { return h.patterns }
