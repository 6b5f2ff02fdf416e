package ovs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/ovn-kubernetes/libovsdb/cache"
	"github.com/ovn-kubernetes/libovsdb/client"
	"github.com/ovn-kubernetes/libovsdb/model"
	"github.com/ovn-kubernetes/libovsdb/ovsdb"
)

// ErrNotFound is wrapped by errors about a bridge, port or interface that
// does not exist.
var ErrNotFound = errors.New("not found in OVSDB")

// cacheWaitTimeout bounds how long a write waits for its own result to show
// in the local cache (normally well under a millisecond).
const cacheWaitTimeout = 10 * time.Second

// Client is a connection to one ovsdb-server's Open_vSwitch database. It
// keeps a cache of the root row, bridges, ports and interfaces, updated by an
// OVSDB monitor; reads are served from the cache, and every write returns
// only once the cache shows its result, so a caller reads its own writes.
//
// A Client does not reconnect: when the connection drops, Disconnected is
// closed, watches end, and the owner connects again and resyncs (agents do
// that anyway after a restart).
type Client struct {
	ovs client.Client
	log *slog.Logger

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced after every cache change
	watchers map[*watcher]struct{}
}

// Connect connects to endpoint (e.g. "unix:/run/openvswitch/db.sock"),
// starts the monitor and waits for the initial contents. It creates the
// root Open_vSwitch row if the database has none (as `ovs-vsctl init`).
func Connect(ctx context.Context, endpoint string, logger *slog.Logger) (*Client, error) {
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("ovsdb", endpoint)
	dbModel, err := clientDBModel()
	if err != nil {
		return nil, fmt.Errorf("ovs: OVSDB model: %w", err)
	}
	lr := logr.FromSlogHandler(logger.Handler())
	ovs, err := client.NewOVSDBClient(dbModel, client.WithEndpoint(endpoint), client.WithLogger(&lr))
	if err != nil {
		return nil, fmt.Errorf("ovs: OVSDB client for %s: %w", endpoint, err)
	}
	if err := ovs.Connect(ctx); err != nil {
		return nil, fmt.Errorf("ovs: connect to %s: %w", endpoint, err)
	}
	c := &Client{ovs: ovs, log: logger, changed: make(chan struct{}), watchers: map[*watcher]struct{}{}}
	ovs.Cache().AddEventHandler(&cache.EventHandlerFuncs{
		AddFunc:    func(table string, m model.Model) { c.onChange(table, nil, m) },
		UpdateFunc: func(table string, old, m model.Model) { c.onChange(table, old, m) },
		DeleteFunc: func(table string, m model.Model) { c.onChange(table, m, nil) },
	})
	if _, err := ovs.Monitor(ctx, ovs.NewMonitor(
		monitorColumns(&openvSwitchRow{}),
		monitorColumns(&bridgeRow{}),
		monitorColumns(&portRow{}),
		monitorColumns(&interfaceRow{}),
	)); err != nil {
		ovs.Close()
		return nil, fmt.Errorf("ovs: monitor %s: %w", endpoint, err)
	}
	if err := c.ensureRoot(ctx); err != nil {
		ovs.Close()
		return nil, err
	}
	return c, nil
}

// monitorColumns monitors exactly the columns the model has: without a
// column list the server sends every column, and the cache rejects rows
// with columns the model lacks.
func monitorColumns(m model.Model) client.MonitorOption {
	v := reflect.ValueOf(m).Elem()
	var fields []any
	for i := range v.NumField() {
		if tag := v.Type().Field(i).Tag.Get("ovsdb"); tag != "" && tag != "_uuid" {
			fields = append(fields, v.Field(i).Addr().Interface())
		}
	}
	return client.WithTable(m, fields...)
}

// Close disconnects. Watches end.
func (c *Client) Close() { c.ovs.Close() }

// Disconnected is closed when the connection to ovsdb-server is lost or
// closed.
func (c *Client) Disconnected() <-chan struct{} { return c.ovs.DisconnectNotify() }

// onChange runs on libovsdb's event goroutine after the cache changed.
func (c *Client) onChange(table string, old, cur model.Model) {
	c.mu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	var ws []*watcher
	if table == tableInterface && len(c.watchers) > 0 {
		ws = slices.Collect(maps.Keys(c.watchers))
	}
	c.mu.Unlock()
	if len(ws) == 0 {
		return
	}
	var oldState, newState *InterfaceState
	if old != nil {
		s := c.interfaceState(old.(*interfaceRow), nil)
		oldState = &s
	}
	if cur != nil {
		s := c.interfaceState(cur.(*interfaceRow), nil)
		newState = &s
	}
	for _, w := range ws {
		w.observe(oldState, newState)
	}
}

// waitCache waits until cond, which reads the cache, holds.
func (c *Client) waitCache(ctx context.Context, what string, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, cacheWaitTimeout)
	defer cancel()
	for {
		c.mu.Lock()
		changed := c.changed
		c.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-changed:
		case <-c.ovs.DisconnectNotify():
			return fmt.Errorf("ovs: %s: disconnected before the change showed", what)
		case <-ctx.Done():
			return fmt.Errorf("ovs: %s: waiting for the change to show: %w", what, ctx.Err())
		}
	}
}

// transact runs ops as one OVSDB transaction, then waits until done (a
// condition on the cache) holds.
func (c *Client) transact(ctx context.Context, what string, ops []ovsdb.Operation, done func() bool) error {
	if len(ops) == 0 {
		return nil
	}
	if _, err := c.transactResults(ctx, what, ops); err != nil {
		return err
	}
	if done == nil {
		return nil
	}
	return c.waitCache(ctx, what, done)
}

func (c *Client) transactResults(ctx context.Context, what string, ops []ovsdb.Operation) ([]ovsdb.OperationResult, error) {
	results, err := c.ovs.Transact(ctx, ops...)
	if err != nil {
		return nil, fmt.Errorf("ovs: %s: %w", what, err)
	}
	if opErrs, err := ovsdb.CheckOperationResults(results, ops); err != nil {
		errs := []error{err}
		for _, e := range opErrs {
			errs = append(errs, e)
		}
		return nil, fmt.Errorf("ovs: %s: %w", what, errors.Join(errs...))
	}
	return results, nil
}

// WaitVSwitchd bumps next_cfg and waits until ovs-vswitchd has applied the
// database (cur_cfg catches up), as ovs-vsctl does without --no-wait. After
// it, new bridges have their management sockets and new ports their
// ofports (or errors).
func (c *Client) WaitVSwitchd(ctx context.Context) error {
	root, ok := c.root()
	if !ok {
		return errors.New("ovs: wait for ovs-vswitchd: no Open_vSwitch row")
	}
	ops, err := c.ovs.Where(root).Mutate(root, model.Mutation{
		Field: &root.NextCfg, Mutator: ovsdb.MutateOperationAdd, Value: 1,
	})
	if err != nil {
		return fmt.Errorf("ovs: wait for ovs-vswitchd: %w", err)
	}
	ops = append(ops, ovsdb.Operation{
		Op: ovsdb.OperationSelect, Table: tableOpenvSwitch, Columns: []string{"next_cfg"},
		Where: []ovsdb.Condition{{Column: "_uuid", Function: ovsdb.ConditionEqual, Value: ovsdb.UUID{GoUUID: root.UUID}}},
	})
	results, err := c.transactResults(ctx, "wait for ovs-vswitchd", ops)
	if err != nil {
		return err
	}
	var target int
	if rows := results[len(results)-1].Rows; len(rows) == 1 {
		switch v := rows[0]["next_cfg"].(type) {
		case float64:
			target = int(v)
		case int:
			target = v
		}
	}
	if target == 0 {
		return errors.New("ovs: wait for ovs-vswitchd: next_cfg not returned")
	}
	return c.waitCache(ctx, "wait for ovs-vswitchd to apply the configuration", func() bool {
		r, ok := c.root()
		return ok && r.CurCfg >= target
	})
}

// create returns insert operations for rows of different tables.
func (c *Client) create(rows ...model.Model) ([]ovsdb.Operation, error) {
	var ops []ovsdb.Operation
	for _, r := range rows {
		op, err := c.ovs.Create(r)
		if err != nil {
			return nil, err
		}
		ops = append(ops, op...)
	}
	return ops, nil
}

func (c *Client) root() (*openvSwitchRow, bool) {
	var rows []openvSwitchRow
	if err := c.ovs.List(context.Background(), &rows); err != nil || len(rows) == 0 {
		return nil, false
	}
	return &rows[0], true
}

func (c *Client) ensureRoot(ctx context.Context) error {
	if _, ok := c.root(); ok {
		return nil
	}
	// One explicit column: OVSDB refuses an insert with an empty row, and
	// libovsdb leaves out columns with zero values.
	ops := []ovsdb.Operation{{Op: ovsdb.OperationInsert, Table: tableOpenvSwitch, Row: ovsdb.Row{"next_cfg": 0}}}
	return c.transact(ctx, "create root row", ops, func() bool { _, ok := c.root(); return ok })
}

func (c *Client) bridgeRow(name string) (*bridgeRow, bool) {
	b := &bridgeRow{Name: name}
	if err := c.ovs.Get(context.Background(), b); err != nil {
		return nil, false
	}
	return b, true
}

func (c *Client) portRow(name string) (*portRow, bool) {
	p := &portRow{Name: name}
	if err := c.ovs.Get(context.Background(), p); err != nil {
		return nil, false
	}
	return p, true
}

func (c *Client) interfaceRow(name string) (*interfaceRow, bool) {
	i := &interfaceRow{Name: name}
	if err := c.ovs.Get(context.Background(), i); err != nil {
		return nil, false
	}
	return i, true
}

// bridgeOfPort returns the bridge whose ports hold portUUID.
func (c *Client) bridgeOfPort(portUUID string) (*bridgeRow, bool) {
	var bridges []bridgeRow
	if err := c.ovs.List(context.Background(), &bridges); err != nil {
		return nil, false
	}
	for i := range bridges {
		if slices.Contains(bridges[i].Ports, portUUID) {
			return &bridges[i], true
		}
	}
	return nil, false
}

// portOfInterface returns the port whose interfaces hold ifaceUUID.
func (c *Client) portOfInterface(ifaceUUID string) (*portRow, bool) {
	var ports []portRow
	if err := c.ovs.List(context.Background(), &ports); err != nil {
		return nil, false
	}
	for i := range ports {
		if slices.Contains(ports[i].Interfaces, ifaceUUID) {
			return &ports[i], true
		}
	}
	return nil, false
}

// Bridge is the desired configuration of a bridge.
type Bridge struct {
	Name string
	// DatapathType is "netdev" for the userspace datapath, "system" or ""
	// for the kernel's.
	DatapathType string
	// FailMode is "secure" (no flows means drop) or "standalone"; "" leaves
	// OVS's default (standalone: a learning switch while no controller
	// answers).
	FailMode string
	// Protocols are the OpenFlow versions the bridge speaks, e.g.
	// OpenFlow13 and OpenFlow14 (bundles need 1.4).
	Protocols []string
	// ExternalIDs and OtherConfig keys are set; keys not named are kept, and
	// a key with an empty value is removed.
	ExternalIDs, OtherConfig map[string]string
}

// EnsureBridge creates the bridge (with its local internal port, as
// `ovs-vsctl add-br` does) or brings an existing one to spec.
func (c *Client) EnsureBridge(ctx context.Context, spec Bridge) error {
	if spec.Name == "" {
		return errors.New("ovs: bridge without a name")
	}
	what := "ensure bridge " + spec.Name
	upToDate := func() bool {
		b, ok := c.bridgeRow(spec.Name)
		return ok && bridgeMatches(b, spec)
	}
	b, ok := c.bridgeRow(spec.Name)
	if ok && bridgeMatches(b, spec) {
		return nil
	}
	root, rootOK := c.root()
	if !rootOK {
		return fmt.Errorf("ovs: %s: no Open_vSwitch row", what)
	}
	var ops []ovsdb.Operation
	if !ok {
		row := &bridgeRow{
			UUID: "new_bridge", Name: spec.Name, DatapathType: spec.DatapathType,
			Protocols: spec.Protocols, Ports: []string{"new_port"},
			ExternalIDs: mergeMap(nil, spec.ExternalIDs), OtherConfig: mergeMap(nil, spec.OtherConfig),
		}
		if spec.FailMode != "" {
			row.FailMode = &spec.FailMode
		}
		create, err := c.create(
			&interfaceRow{UUID: "new_iface", Name: spec.Name, Type: "internal"},
			&portRow{UUID: "new_port", Name: spec.Name, Interfaces: []string{"new_iface"}},
			row,
		)
		if err != nil {
			return fmt.Errorf("ovs: %s: %w", what, err)
		}
		mutate, err := c.ovs.Where(root).Mutate(root, model.Mutation{
			Field: &root.Bridges, Mutator: ovsdb.MutateOperationInsert, Value: []string{"new_bridge"},
		})
		if err != nil {
			return fmt.Errorf("ovs: %s: %w", what, err)
		}
		ops = append(create, mutate...)
	} else {
		update := *b
		update.DatapathType = spec.DatapathType
		update.Protocols = spec.Protocols
		update.ExternalIDs = mergeMap(b.ExternalIDs, spec.ExternalIDs)
		update.OtherConfig = mergeMap(b.OtherConfig, spec.OtherConfig)
		fields := []any{&update.DatapathType, &update.Protocols, &update.ExternalIDs, &update.OtherConfig}
		if spec.FailMode != "" {
			update.FailMode = &spec.FailMode
			fields = append(fields, &update.FailMode)
		}
		var err error
		ops, err = c.ovs.Where(b).Update(&update, fields...)
		if err != nil {
			return fmt.Errorf("ovs: %s: %w", what, err)
		}
	}
	return c.transact(ctx, what, ops, upToDate)
}

func bridgeMatches(b *bridgeRow, spec Bridge) bool {
	return normalDatapath(b.DatapathType) == normalDatapath(spec.DatapathType) &&
		(spec.FailMode == "" || (b.FailMode != nil && *b.FailMode == spec.FailMode)) &&
		sameSet(b.Protocols, spec.Protocols) &&
		mapHolds(b.ExternalIDs, spec.ExternalIDs) && mapHolds(b.OtherConfig, spec.OtherConfig)
}

func normalDatapath(t string) string {
	if t == "" {
		return "system"
	}
	return t
}

// DeleteBridge deletes the bridge with all its ports. A missing bridge is
// not an error.
func (c *Client) DeleteBridge(ctx context.Context, name string) error {
	b, ok := c.bridgeRow(name)
	if !ok {
		return nil
	}
	root, rootOK := c.root()
	if !rootOK {
		return fmt.Errorf("ovs: delete bridge %s: no Open_vSwitch row", name)
	}
	// Ports and interfaces are not root tables: OVSDB collects them once
	// no bridge refers to them.
	ops, err := c.ovs.Where(root).Mutate(root, model.Mutation{
		Field: &root.Bridges, Mutator: ovsdb.MutateOperationDelete, Value: []string{b.UUID},
	})
	if err != nil {
		return fmt.Errorf("ovs: delete bridge %s: %w", name, err)
	}
	return c.transact(ctx, "delete bridge "+name, ops, func() bool { _, ok := c.bridgeRow(name); return !ok })
}

// BridgeState is a bridge as OVSDB shows it.
type BridgeState struct {
	Name, DatapathType, FailMode string
	Protocols                    []string
	DatapathID                   string
	Ports                        []string // port names, sorted
	ExternalIDs, OtherConfig     map[string]string
}

// Bridge returns the named bridge; the error wraps ErrNotFound if missing.
func (c *Client) Bridge(name string) (BridgeState, error) {
	b, ok := c.bridgeRow(name)
	if !ok {
		return BridgeState{}, fmt.Errorf("ovs: bridge %s: %w", name, ErrNotFound)
	}
	s := BridgeState{
		Name: b.Name, DatapathType: b.DatapathType, Protocols: slices.Clone(b.Protocols),
		ExternalIDs: maps.Clone(b.ExternalIDs), OtherConfig: maps.Clone(b.OtherConfig),
	}
	if b.FailMode != nil {
		s.FailMode = *b.FailMode
	}
	if b.DatapathID != nil {
		s.DatapathID = *b.DatapathID
	}
	for _, pu := range b.Ports {
		p := &portRow{UUID: pu}
		if err := c.ovs.Get(context.Background(), p); err == nil {
			s.Ports = append(s.Ports, p.Name)
		}
	}
	sort.Strings(s.Ports)
	return s, nil
}

// BridgeNames lists the bridges, sorted.
func (c *Client) BridgeNames() []string {
	var bridges []bridgeRow
	c.ovs.List(context.Background(), &bridges)
	names := make([]string, 0, len(bridges))
	for _, b := range bridges {
		names = append(names, b.Name)
	}
	sort.Strings(names)
	return names
}

// Port is the desired configuration of a port with one interface of the
// same name.
type Port struct {
	Name string
	// Type is the interface type: "" (or "system") for an existing network
	// device such as a veth, "internal", "patch", "vxlan", "gre", "geneve"…
	Type string
	// Options are the interface options (peer, remote_ip, local_ip, key…),
	// replaced as given.
	Options map[string]string
	// ExternalIDs are interface external_ids (iface-id, attached-mac…);
	// PortOtherConfig are the port's other_config. Keys named are set (an
	// empty value removes the key); others are kept.
	ExternalIDs, PortOtherConfig map[string]string
	// Tag is the port's access VLAN; 0 means none.
	Tag int
	// OfportRequest asks for a given OpenFlow port number; 0 lets OVS pick.
	OfportRequest int
	// MTURequest sets the interface's MTU; 0 leaves it.
	MTURequest int
}

// EnsurePort creates the port on bridge, moves it there from another
// bridge, or brings it to spec.
func (c *Client) EnsurePort(ctx context.Context, bridge string, spec Port) error {
	return c.ensurePorts(ctx, "ensure port "+spec.Name, []portOnBridge{{bridge, spec}})
}

// EnsurePatchPorts joins two bridges with a pair of patch ports, portA on
// bridgeA and portB on bridgeB, in one transaction.
func (c *Client) EnsurePatchPorts(ctx context.Context, bridgeA, portA, bridgeB, portB string) error {
	return c.ensurePorts(ctx, "ensure patch ports "+portA+"/"+portB, []portOnBridge{
		{bridgeA, Port{Name: portA, Type: "patch", Options: map[string]string{"peer": portB}}},
		{bridgeB, Port{Name: portB, Type: "patch", Options: map[string]string{"peer": portA}}},
	})
}

type portOnBridge struct {
	bridge string
	spec   Port
}

func (c *Client) ensurePorts(ctx context.Context, what string, want []portOnBridge) error {
	upToDate := func() bool {
		for _, w := range want {
			if !c.portMatches(w.bridge, w.spec) {
				return false
			}
		}
		return true
	}
	if upToDate() {
		return nil
	}
	var ops []ovsdb.Operation
	for i, w := range want {
		more, err := c.portOps(i, w.bridge, w.spec)
		if err != nil {
			return fmt.Errorf("ovs: %s: %w", what, err)
		}
		ops = append(ops, more...)
	}
	return c.transact(ctx, what, ops, upToDate)
}

// portMatches reports whether the cache shows spec on bridge.
func (c *Client) portMatches(bridge string, spec Port) bool {
	p, ok := c.portRow(spec.Name)
	if !ok {
		return false
	}
	b, ok := c.bridgeOfPort(p.UUID)
	if !ok || b.Name != bridge {
		return false
	}
	iface, ok := c.interfaceRow(spec.Name)
	if !ok || !slices.Contains(p.Interfaces, iface.UUID) {
		return false
	}
	return normalIfaceType(iface.Type) == normalIfaceType(spec.Type) &&
		maps.Equal(iface.Options, nonNil(spec.Options)) &&
		mapHolds(iface.ExternalIDs, spec.ExternalIDs) &&
		mapHolds(p.OtherConfig, spec.PortOtherConfig) &&
		intPtrIs(p.Tag, spec.Tag) &&
		(spec.OfportRequest == 0 || intPtrIs(iface.OfportRequest, spec.OfportRequest)) &&
		(spec.MTURequest == 0 || intPtrIs(iface.MTURequest, spec.MTURequest))
}

// portOps returns the operations that bring the port to spec on bridge.
// i keeps the named UUIDs of several ports in one transaction apart.
func (c *Client) portOps(i int, bridge string, spec Port) ([]ovsdb.Operation, error) {
	if spec.Name == "" {
		return nil, errors.New("port without a name")
	}
	if spec.Tag < 0 || spec.Tag > 4095 {
		return nil, fmt.Errorf("port %s: VLAN tag %d out of range 0-4095", spec.Name, spec.Tag)
	}
	b, ok := c.bridgeRow(bridge)
	if !ok {
		return nil, fmt.Errorf("bridge %s: %w", bridge, ErrNotFound)
	}
	p, portExists := c.portRow(spec.Name)
	iface, ifaceExists := c.interfaceRow(spec.Name)
	if portExists != ifaceExists || (portExists && !slices.Contains(p.Interfaces, iface.UUID)) {
		return nil, fmt.Errorf("port %s exists without its interface of the same name; delete it first", spec.Name)
	}

	if !portExists {
		ifaceUUID, portUUID := fmt.Sprintf("new_iface%d", i), fmt.Sprintf("new_port%d", i)
		newIface := &interfaceRow{
			UUID: ifaceUUID, Name: spec.Name, Type: spec.Type, Options: nonNil(spec.Options),
			ExternalIDs: mergeMap(nil, spec.ExternalIDs),
		}
		if spec.OfportRequest != 0 {
			newIface.OfportRequest = &spec.OfportRequest
		}
		if spec.MTURequest != 0 {
			newIface.MTURequest = &spec.MTURequest
		}
		newPort := &portRow{UUID: portUUID, Name: spec.Name, Interfaces: []string{ifaceUUID}, OtherConfig: mergeMap(nil, spec.PortOtherConfig)}
		if spec.Tag != 0 {
			newPort.Tag = &spec.Tag
		}
		ops, err := c.create(newIface, newPort)
		if err != nil {
			return nil, err
		}
		attach, err := c.ovs.Where(b).Mutate(b, model.Mutation{
			Field: &b.Ports, Mutator: ovsdb.MutateOperationInsert, Value: []string{portUUID},
		})
		if err != nil {
			return nil, err
		}
		return append(ops, attach...), nil
	}

	var ops []ovsdb.Operation
	if from, ok := c.bridgeOfPort(p.UUID); !ok || from.Name != bridge {
		if ok {
			detach, err := c.ovs.Where(from).Mutate(from, model.Mutation{
				Field: &from.Ports, Mutator: ovsdb.MutateOperationDelete, Value: []string{p.UUID},
			})
			if err != nil {
				return nil, err
			}
			ops = append(ops, detach...)
		}
		attach, err := c.ovs.Where(b).Mutate(b, model.Mutation{
			Field: &b.Ports, Mutator: ovsdb.MutateOperationInsert, Value: []string{p.UUID},
		})
		if err != nil {
			return nil, err
		}
		ops = append(ops, attach...)
	}

	ifaceUpdate := *iface
	ifaceUpdate.Type = spec.Type
	ifaceUpdate.Options = nonNil(spec.Options)
	ifaceUpdate.ExternalIDs = mergeMap(iface.ExternalIDs, spec.ExternalIDs)
	ifaceFields := []any{&ifaceUpdate.Type, &ifaceUpdate.Options, &ifaceUpdate.ExternalIDs}
	if spec.OfportRequest != 0 {
		ifaceUpdate.OfportRequest = &spec.OfportRequest
		ifaceFields = append(ifaceFields, &ifaceUpdate.OfportRequest)
	}
	if spec.MTURequest != 0 {
		ifaceUpdate.MTURequest = &spec.MTURequest
		ifaceFields = append(ifaceFields, &ifaceUpdate.MTURequest)
	}
	update, err := c.ovs.Where(iface).Update(&ifaceUpdate, ifaceFields...)
	if err != nil {
		return nil, err
	}
	ops = append(ops, update...)

	portUpdate := *p
	portUpdate.OtherConfig = mergeMap(p.OtherConfig, spec.PortOtherConfig)
	portUpdate.Tag = nil
	if spec.Tag != 0 {
		portUpdate.Tag = &spec.Tag
	}
	update, err = c.ovs.Where(p).Update(&portUpdate, &portUpdate.OtherConfig, &portUpdate.Tag)
	if err != nil {
		return nil, err
	}
	return append(ops, update...), nil
}

func normalIfaceType(t string) string {
	if t == "system" {
		return ""
	}
	return t
}

// DeletePort removes the port (and its interface) from whichever bridge
// holds it. A missing port is not an error.
func (c *Client) DeletePort(ctx context.Context, name string) error {
	p, ok := c.portRow(name)
	if !ok {
		return nil
	}
	b, ok := c.bridgeOfPort(p.UUID)
	if !ok {
		return nil // not on a bridge: OVSDB collects it by itself
	}
	ops, err := c.ovs.Where(b).Mutate(b, model.Mutation{
		Field: &b.Ports, Mutator: ovsdb.MutateOperationDelete, Value: []string{p.UUID},
	})
	if err != nil {
		return fmt.Errorf("ovs: delete port %s: %w", name, err)
	}
	return c.transact(ctx, "delete port "+name, ops, func() bool { _, ok := c.portRow(name); return !ok })
}

// SetPortTag sets the access VLAN of an existing port (0 removes it), as
// the l2 agent does for VIF ports it did not create.
func (c *Client) SetPortTag(ctx context.Context, name string, tag int) error {
	return c.SetPortTags(ctx, map[string]int{name: tag})
}

// SetPortTags sets the access VLANs of existing ports (0 removes a tag) in
// one transaction, for an agent's resync; ports already right are skipped.
func (c *Client) SetPortTags(ctx context.Context, tags map[string]int) error {
	what := fmt.Sprintf("set VLAN tags of %d ports", len(tags))
	if len(tags) == 1 {
		for name := range tags {
			what = "set tag of port " + name
		}
	}
	var ops []ovsdb.Operation
	for name, tag := range tags {
		if tag < 0 || tag > 4095 {
			return fmt.Errorf("ovs: port %s: VLAN tag %d out of range 0-4095", name, tag)
		}
		p, ok := c.portRow(name)
		if !ok {
			return fmt.Errorf("ovs: %s: port %s: %w", what, name, ErrNotFound)
		}
		if intPtrIs(p.Tag, tag) {
			continue
		}
		update := *p
		update.Tag = nil
		if tag != 0 {
			update.Tag = &tag
		}
		op, err := c.ovs.Where(p).Update(&update, &update.Tag)
		if err != nil {
			return fmt.Errorf("ovs: %s: %w", what, err)
		}
		ops = append(ops, op...)
	}
	return c.transact(ctx, what, ops, func() bool {
		for name, tag := range tags {
			if p, ok := c.portRow(name); ok && !intPtrIs(p.Tag, tag) {
				return false
			}
		}
		return true
	})
}

// Table names an OVSDB table whose rows carry external_ids and other_config.
type Table string

// The tables SetExternalIDs and SetOtherConfig work on.
const (
	TableOpenvSwitch Table = tableOpenvSwitch // the root row; name is ignored
	TableBridge      Table = tableBridge
	TablePort        Table = tablePort
	TableInterface   Table = tableInterface
)

// SetExternalIDs sets keys of a row's external_ids: the named bridge, port
// or interface, or the root row. An empty value removes the key; keys not
// named are kept.
func (c *Client) SetExternalIDs(ctx context.Context, table Table, name string, ids map[string]string) error {
	return c.setMapColumn(ctx, table, name, "external_ids", ids)
}

// SetOtherConfig sets keys of a row's other_config, as SetExternalIDs does.
func (c *Client) SetOtherConfig(ctx context.Context, table Table, name string, config map[string]string) error {
	return c.setMapColumn(ctx, table, name, "other_config", config)
}

func (c *Client) setMapColumn(ctx context.Context, table Table, name, column string, values map[string]string) error {
	what := fmt.Sprintf("set %s of %s %s", column, table, name)
	// current finds the row and a pointer to its map column.
	current := func() (model.Model, *map[string]string, bool) {
		switch table {
		case TableOpenvSwitch:
			r, ok := c.root()
			if !ok {
				return nil, nil, false
			}
			return r, pick(column, &r.ExternalIDs, &r.OtherConfig), true
		case TableBridge:
			r, ok := c.bridgeRow(name)
			if !ok {
				return nil, nil, false
			}
			return r, pick(column, &r.ExternalIDs, &r.OtherConfig), true
		case TablePort:
			r, ok := c.portRow(name)
			if !ok {
				return nil, nil, false
			}
			return r, pick(column, &r.ExternalIDs, &r.OtherConfig), true
		case TableInterface:
			r, ok := c.interfaceRow(name)
			if !ok {
				return nil, nil, false
			}
			return r, pick(column, &r.ExternalIDs, &r.OtherConfig), true
		}
		return nil, nil, false
	}
	row, col, ok := current()
	if !ok {
		return fmt.Errorf("ovs: %s: %w", what, ErrNotFound)
	}
	if mapHolds(*col, values) {
		return nil
	}
	*col = mergeMap(*col, values)
	ops, err := c.ovs.Where(row).Update(row, col)
	if err != nil {
		return fmt.Errorf("ovs: %s: %w", what, err)
	}
	return c.transact(ctx, what, ops, func() bool {
		_, col, ok := current()
		return !ok || mapHolds(*col, values)
	})
}

func pick(column string, externalIDs, otherConfig *map[string]string) *map[string]string {
	if column == "external_ids" {
		return externalIDs
	}
	return otherConfig
}

// InterfaceState is an interface as OVSDB shows it.
type InterfaceState struct {
	UUID, Name, Type string
	// Port and Bridge hold the interface ("" while not attached).
	Port, Bridge string
	// Ofport is the OpenFlow port number: 0 while OVS has not assigned one,
	// -1 if OVS could not add the interface (see Error).
	Ofport int
	// IfaceID and AttachedMAC are external_ids:iface-id (the Neutron port
	// id) and external_ids:attached-mac, as Nova's VIF driver sets them.
	IfaceID, AttachedMAC string
	ExternalIDs, Options map[string]string
	MAC                  string // mac_in_use
	LinkUp               bool
	Error                string
}

// attachments maps interface UUIDs to the names of the port and bridge
// holding them.
type attachments struct {
	port, bridge map[string]string
}

// attachmentsOf indexes every port and bridge once, for listings.
func (c *Client) attachmentsOf() attachments {
	var ports []portRow
	var bridges []bridgeRow
	c.ovs.List(context.Background(), &ports)
	c.ovs.List(context.Background(), &bridges)
	bridgeOfPort := map[string]string{}
	for _, b := range bridges {
		for _, pu := range b.Ports {
			bridgeOfPort[pu] = b.Name
		}
	}
	a := attachments{port: map[string]string{}, bridge: map[string]string{}}
	for _, p := range ports {
		for _, iu := range p.Interfaces {
			a.port[iu] = p.Name
			a.bridge[iu] = bridgeOfPort[p.UUID]
		}
	}
	return a
}

// interfaceState converts a row; a nil index looks the row's port and
// bridge up alone.
func (c *Client) interfaceState(r *interfaceRow, index *attachments) InterfaceState {
	s := InterfaceState{
		UUID: r.UUID, Name: r.Name, Type: r.Type,
		IfaceID: r.ExternalIDs["iface-id"], AttachedMAC: r.ExternalIDs["attached-mac"],
		ExternalIDs: maps.Clone(r.ExternalIDs), Options: maps.Clone(r.Options),
	}
	if r.Ofport != nil {
		s.Ofport = *r.Ofport
	}
	if r.MACInUse != nil {
		s.MAC = *r.MACInUse
	}
	if r.LinkState != nil {
		s.LinkUp = *r.LinkState == "up"
	}
	if r.Error != nil {
		s.Error = *r.Error
	}
	if index != nil {
		s.Port, s.Bridge = index.port[r.UUID], index.bridge[r.UUID]
	} else if p, ok := c.portOfInterface(r.UUID); ok {
		s.Port = p.Name
		if b, ok := c.bridgeOfPort(p.UUID); ok {
			s.Bridge = b.Name
		}
	}
	return s
}

// Interface returns the named interface; the error wraps ErrNotFound if
// missing.
func (c *Client) Interface(name string) (InterfaceState, error) {
	r, ok := c.interfaceRow(name)
	if !ok {
		return InterfaceState{}, fmt.Errorf("ovs: interface %s: %w", name, ErrNotFound)
	}
	return c.interfaceState(r, nil), nil
}

// Interfaces lists every interface, sorted by name.
func (c *Client) Interfaces() []InterfaceState {
	var rows []interfaceRow
	c.ovs.List(context.Background(), &rows)
	index := c.attachmentsOf()
	out := make([]InterfaceState, 0, len(rows))
	for i := range rows {
		out = append(out, c.interfaceState(&rows[i], &index))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// PortState is a port as OVSDB shows it.
type PortState struct {
	Name, Bridge             string
	Tag                      int
	ExternalIDs, OtherConfig map[string]string
	Interfaces               []InterfaceState
}

// Ports lists the ports of bridge, sorted by name, with their interfaces
// and external_ids; the error wraps ErrNotFound if the bridge is missing.
func (c *Client) Ports(bridge string) ([]PortState, error) {
	b, ok := c.bridgeRow(bridge)
	if !ok {
		return nil, fmt.Errorf("ovs: ports of bridge %s: %w", bridge, ErrNotFound)
	}
	index := c.attachmentsOf()
	var out []PortState
	for _, pu := range b.Ports {
		p := &portRow{UUID: pu}
		if err := c.ovs.Get(context.Background(), p); err != nil {
			continue
		}
		ps := PortState{Name: p.Name, Bridge: b.Name, ExternalIDs: maps.Clone(p.ExternalIDs), OtherConfig: maps.Clone(p.OtherConfig)}
		if p.Tag != nil {
			ps.Tag = *p.Tag
		}
		for _, iu := range p.Interfaces {
			r := &interfaceRow{UUID: iu}
			if err := c.ovs.Get(context.Background(), r); err == nil {
				ps.Interfaces = append(ps.Interfaces, c.interfaceState(r, &index))
			}
		}
		out = append(out, ps)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// WaitOfport waits until OVS has given the interface an OpenFlow port
// number and returns it; it fails if OVS could not add the interface.
func (c *Client) WaitOfport(ctx context.Context, name string) (int, error) {
	var ofport int
	var failure error
	err := c.waitCache(ctx, "wait for the ofport of "+name, func() bool {
		r, ok := c.interfaceRow(name)
		if !ok || r.Ofport == nil || *r.Ofport == 0 {
			return false
		}
		if *r.Ofport < 0 {
			msg := "no reason given"
			if r.Error != nil {
				msg = *r.Error
			}
			failure = fmt.Errorf("ovs: interface %s could not be added: %s", name, msg)
			return true
		}
		ofport = *r.Ofport
		return true
	})
	if err != nil {
		return 0, err
	}
	return ofport, failure
}

// mergeMap returns base with the keys of set applied: an empty value
// removes the key. It never returns nil (OVSDB wants empty maps).
func mergeMap(base, set map[string]string) map[string]string {
	out := maps.Clone(base)
	if out == nil {
		out = map[string]string{}
	}
	for k, v := range set {
		if v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// mapHolds reports whether m already has the keys of set applied.
func mapHolds(m, set map[string]string) bool {
	for k, v := range set {
		got, ok := m[k]
		if v == "" && ok || v != "" && got != v {
			return false
		}
	}
	return true
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// intPtrIs compares an optional OVSDB integer with a value where 0 means
// unset.
func intPtrIs(p *int, v int) bool {
	if p == nil {
		return v == 0
	}
	return *p == v
}
