package ovs

import "github.com/ovn-kubernetes/libovsdb/model"

// The OVSDB models below are hand-written subsets of Open_vSwitch's schema
// (vswitch.ovsschema): only the columns neutrino reads or writes. Leaving
// out busy columns such as Interface.statistics keeps the monitor quiet, and
// a subset stays valid against newer OVS schemas.

// openvSwitchRow is the root row of the Open_vSwitch table.
type openvSwitchRow struct {
	UUID        string            `ovsdb:"_uuid"`
	Bridges     []string          `ovsdb:"bridges"`
	ExternalIDs map[string]string `ovsdb:"external_ids"`
	OtherConfig map[string]string `ovsdb:"other_config"`
	NextCfg     int               `ovsdb:"next_cfg"`
	CurCfg      int               `ovsdb:"cur_cfg"`
}

type bridgeRow struct {
	UUID         string            `ovsdb:"_uuid"`
	Name         string            `ovsdb:"name"`
	Ports        []string          `ovsdb:"ports"`
	DatapathType string            `ovsdb:"datapath_type"`
	FailMode     *string           `ovsdb:"fail_mode"`
	Protocols    []string          `ovsdb:"protocols"`
	ExternalIDs  map[string]string `ovsdb:"external_ids"`
	OtherConfig  map[string]string `ovsdb:"other_config"`
	DatapathID   *string           `ovsdb:"datapath_id"`
}

type portRow struct {
	UUID        string            `ovsdb:"_uuid"`
	Name        string            `ovsdb:"name"`
	Interfaces  []string          `ovsdb:"interfaces"`
	Tag         *int              `ovsdb:"tag"`
	ExternalIDs map[string]string `ovsdb:"external_ids"`
	OtherConfig map[string]string `ovsdb:"other_config"`
}

type interfaceRow struct {
	UUID          string            `ovsdb:"_uuid"`
	Name          string            `ovsdb:"name"`
	Type          string            `ovsdb:"type"`
	Options       map[string]string `ovsdb:"options"`
	ExternalIDs   map[string]string `ovsdb:"external_ids"`
	OtherConfig   map[string]string `ovsdb:"other_config"`
	Ofport        *int              `ovsdb:"ofport"`
	OfportRequest *int              `ovsdb:"ofport_request"`
	MACInUse      *string           `ovsdb:"mac_in_use"`
	MTURequest    *int              `ovsdb:"mtu_request"`
	LinkState     *string           `ovsdb:"link_state"`
	AdminState    *string           `ovsdb:"admin_state"`
	Error         *string           `ovsdb:"error"`
}

const (
	tableOpenvSwitch = "Open_vSwitch"
	tableBridge      = "Bridge"
	tablePort        = "Port"
	tableInterface   = "Interface"
)

func clientDBModel() (model.ClientDBModel, error) {
	return model.NewClientDBModel("Open_vSwitch", map[string]model.Model{
		tableOpenvSwitch: &openvSwitchRow{},
		tableBridge:      &bridgeRow{},
		tablePort:        &portRow{},
		tableInterface:   &interfaceRow{},
	})
}
