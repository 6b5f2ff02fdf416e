package service

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/policy"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// Neutron's tag limits.
const (
	maxTagLen = 60
	maxTags   = 50
)

func validateTag(t string) error {
	if t == "" || len(t) > maxTagLen || strings.ContainsAny(t, ",/") {
		return fault.BadRequest("Invalid input for tag. Reason: '%s' is not a valid tag: tags are 1 to %d characters and contain neither ',' nor '/'.", t, maxTagLen)
	}
	return nil
}

// Tags returns an item's tags.
func (s *Service) Tags(ctx context.Context, c *Call, r *resource.Resource, id string) ([]string, error) {
	obj, err := s.Show(ctx, c, r, id)
	if err != nil {
		return nil, err
	}
	return tagsOf(obj), nil
}

func tagsOf(obj resource.Object) []string {
	var out []string
	if l, ok := obj["tags"].([]any); ok {
		for _, t := range l {
			out = append(out, fmt.Sprint(t))
		}
	}
	return out
}

// ModifyTags changes an item's tags with fn and stores them (bumping the
// revision). It returns the new tags.
func (s *Service) ModifyTags(ctx context.Context, c *Call, r *resource.Resource, id string, fn func([]string) ([]string, error)) ([]string, error) {
	if !r.Standard {
		return nil, fault.NotFound("HTTPNotFound", "The resource could not be found.")
	}
	var tags []string
	var obj resource.Object
	err := s.db.Tx(ctx, func(tx *store.Tx) error {
		var err error
		if obj, err = s.Load(ctx, tx, c, r, id); err != nil {
			return err
		}
		if err := s.checkWrite(ctx, tx, c, r, obj, "update", policy.For(r.Plural).Update); err != nil {
			return err
		}
		if tags, err = fn(tagsOf(obj)); err != nil {
			return err
		}
		for _, t := range tags {
			if err := validateTag(t); err != nil {
				return err
			}
		}
		tags = dedupe(tags)
		if len(tags) > maxTags {
			return fault.BadRequest("The number of tags exceeds the maximum of %d", maxTags)
		}
		l := make([]any, len(tags))
		for i, t := range tags {
			l[i] = t
		}
		obj["tags"] = l
		return tx.Update(ctx, r, obj)
	})
	if err != nil {
		return nil, err
	}
	s.emit(ctx, []Event{{Resource: r.Plural, Action: "update", Object: obj}})
	return tags, nil
}

func dedupe(tags []string) []string {
	out := slices.Clone(tags)
	sort.Strings(out)
	return slices.Compact(out)
}
