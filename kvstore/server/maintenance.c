/* maintenance.c — etcdserverpb.Maintenance/Status: the one Maintenance method etcdctl's
 * `endpoint status` needs. A single-member "cluster": leader = this member, raft index and
 * applied index = the current revision (what moves when the store changes), raft term 1. The
 * version is a constant etcd 3.4 clients accept. Runs on the loop thread (kv_status is a cheap
 * read). */
#include <stdlib.h>

#include "srv_internal.h"

void kvs_status_unary(kvs_server *srv, grpc_call *call, kvs_conn *conn, const uint8_t *msg,
                      size_t len, uint64_t t0) {
    kvs_alloc a;
    kvs_alloc_init(&a, 8 * len + 4096);
    ProtobufCMessage *req;
    if (kvs_unpack(&etcdserverpb__status_request__descriptor, msg, len, &a, &req) != KVS_DEC_OK) {
        grpc_call_fail(call, GRPC_STATUS_INTERNAL,
                       "grpc: error unmarshalling request: proto: cannot parse invalid "
                       "wire-format data");
        kvs_finish_metrics(srv, conn, KVS_M_STATUS, t0, GRPC_STATUS_INTERNAL, 0);
        return;
    }
    protobuf_c_message_free_unpacked(req, &a.pc);
    kv_status st;
    kv_status_get(srv->store, &st);
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    kv_fill_header(srv->store, &h, st.revision);
    Etcdserverpb__StatusResponse resp = ETCDSERVERPB__STATUS_RESPONSE__INIT;
    resp.header = &h;
    resp.version = (char *)KVS_ETCD_VERSION;
    resp.dbsize = st.db_size;
    resp.dbsizeinuse = st.db_size_in_use;
    resp.leader = st.member_id;
    resp.raftindex = (uint64_t)st.revision;
    resp.raftappliedindex = (uint64_t)st.revision;
    resp.raftterm = 1;
    uint8_t buf[256];
    size_t n = etcdserverpb__status_response__get_packed_size(&resp);
    if (n > sizeof buf) { /* cannot happen: a fixed set of small fields */
        grpc_call_fail(call, GRPC_STATUS_INTERNAL, "kvstore: status response too large");
        kvs_finish_metrics(srv, conn, KVS_M_STATUS, t0, GRPC_STATUS_INTERNAL, 0);
        return;
    }
    etcdserverpb__status_response__pack(&resp, buf);
    grpc_call_reply(call, buf, n);
    kvs_finish_metrics(srv, conn, KVS_M_STATUS, t0, GRPC_STATUS_OK, n);
}
