package service

import (
	"context"

	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// mergeHooks combines several hook sets into one that runs each phase's
// hooks in order. Facts come from the first set that has them; Actions are
// the union.
func mergeHooks(hs []*Hooks) *Hooks {
	m := &Hooks{Actions: map[string]Action{}}
	type objFn = func(ctx context.Context, tx *store.Tx, c *Call, obj resource.Object) error
	chain := func(get func(*Hooks) objFn) objFn {
		var fns []objFn
		for _, h := range hs {
			if f := get(h); f != nil {
				fns = append(fns, f)
			}
		}
		if len(fns) == 0 {
			return nil
		}
		return func(ctx context.Context, tx *store.Tx, c *Call, obj resource.Object) error {
			for _, f := range fns {
				if err := f(ctx, tx, c, obj); err != nil {
					return err
				}
			}
			return nil
		}
	}
	m.PostCreate = chain(func(h *Hooks) objFn { return h.PostCreate })
	m.PreDelete = chain(func(h *Hooks) objFn { return h.PreDelete })
	m.PostDelete = chain(func(h *Hooks) objFn { return h.PostDelete })
	m.Show = chain(func(h *Hooks) objFn { return h.Show })
	for _, h := range hs {
		if m.Facts == nil && h.Facts != nil {
			m.Facts = h.Facts
		}
		for k, a := range h.Actions {
			m.Actions[k] = a
		}
	}
	var pre []func(context.Context, *store.Tx, *Call, resource.Object, map[string]bool) error
	var preU []func(context.Context, *store.Tx, *Call, resource.Object, resource.Object, resource.Object) error
	var postU []func(context.Context, *store.Tx, *Call, resource.Object, resource.Object) error
	for _, h := range hs {
		if h.PreCreate != nil {
			pre = append(pre, h.PreCreate)
		}
		if h.PreUpdate != nil {
			preU = append(preU, h.PreUpdate)
		}
		if h.PostUpdate != nil {
			postU = append(postU, h.PostUpdate)
		}
	}
	if len(pre) > 0 {
		m.PreCreate = func(ctx context.Context, tx *store.Tx, c *Call, obj resource.Object, given map[string]bool) error {
			for _, f := range pre {
				if err := f(ctx, tx, c, obj, given); err != nil {
					return err
				}
			}
			return nil
		}
	}
	if len(preU) > 0 {
		m.PreUpdate = func(ctx context.Context, tx *store.Tx, c *Call, old, obj, changes resource.Object) error {
			for _, f := range preU {
				if err := f(ctx, tx, c, old, obj, changes); err != nil {
					return err
				}
			}
			return nil
		}
	}
	if len(postU) > 0 {
		m.PostUpdate = func(ctx context.Context, tx *store.Tx, c *Call, old, obj resource.Object) error {
			for _, f := range postU {
				if err := f(ctx, tx, c, old, obj); err != nil {
					return err
				}
			}
			return nil
		}
	}
	return m
}
