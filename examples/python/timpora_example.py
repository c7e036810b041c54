#!/usr/bin/env python3
"""A TIMPORA client in Python, written from the contract in `proto/timpora/v1` alone.

It shows what an agency's integrator does: generate stubs from the .proto files (here at run
time, with grpcio-tools), connect to the gateway with mutual TLS (the agency's client
certificate is its identity), publish an event in the agency's own terms, read the field
details of a refusal, subscribe to what the agency may read, and list alerts.

    python3 timpora_example.py --target localhost:50051 --ca ca.pem \\
        --cert imigrasi__kanim-kendari.pem --key imigrasi__kanim-kendari.key \\
        interview --id kdi-2026-0001 --nik 7402054107900001

Every command prints JSON, one object per line; a refusal prints its code, message and field
violations and exits with status 1. Synthetic data only: never a real person's NIK.
"""

import argparse
import datetime
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
PROTO = HERE.parent.parent / "proto"
GENERATED = HERE / "generated"


def generate_stubs():
    """Generate the Python stubs from proto/ (messages and gRPC services)."""
    import grpc_tools
    from grpc_tools import protoc

    GENERATED.mkdir(exist_ok=True)
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    files = sorted(str(p.relative_to(PROTO)) for p in (PROTO / "timpora" / "v1").glob("*.proto"))
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO}",
            f"-I{well_known}",
            f"--python_out={GENERATED}",
            f"--grpc_python_out={GENERATED}",
            *files,
        ]
    )
    if code != 0:
        sys.exit(f"protoc failed with status {code}")
    sys.path.insert(0, str(GENERATED))


generate_stubs()

import grpc  # noqa: E402
from google.protobuf import json_format, timestamp_pb2  # noqa: E402
from grpc_status import rpc_status  # noqa: E402
from google.rpc import error_details_pb2  # noqa: E402

from timpora.v1 import alert_pb2, alert_pb2_grpc  # noqa: E402
from timpora.v1 import bus_pb2, bus_pb2_grpc  # noqa: E402
from timpora.v1 import common_pb2, imigrasi_pb2, imigrasi_pb2_grpc  # noqa: E402


def channel(args):
    """A channel to the gateway authenticated by the agency's client certificate."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pathlib.Path(args.ca).read_bytes(),
        private_key=pathlib.Path(args.key).read_bytes(),
        certificate_chain=pathlib.Path(args.cert).read_bytes(),
    )
    return grpc.secure_channel(args.target, credentials)


def refusal(error):
    """A gRPC error as JSON, with the fields a BadRequest names."""
    out = {"code": error.code().name, "message": error.details(), "fields": []}
    status = rpc_status.from_call(error)
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out["fields"] += [
                {"field": v.field, "description": v.description} for v in bad.field_violations
            ]
    return out


def now():
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(datetime.datetime.now(datetime.timezone.utc))
    return ts


def interview(args):
    """Record a deferred passport interview, as an immigration office does."""
    stub = imigrasi_pb2_grpc.ImigrasiServiceStub(channel(args))
    request = imigrasi_pb2.RecordPassportInterviewRequest(
        meta=common_pb2.EventMeta(id=args.id, time=now(), region=args.region),
        interview=imigrasi_pb2.PassportInterview(
            applicant=common_pb2.Person(nik=args.nik),
            declared_purpose=imigrasi_pb2.TRAVEL_PURPOSE_TOURISM,
            destination_country="KH",
            outcome=imigrasi_pb2.INTERVIEW_OUTCOME_DEFERRED,
        ),
    )
    ack = stub.RecordPassportInterview(request, timeout=10).ack
    print(json.dumps(json_format.MessageToDict(ack)))


def subscribe(args):
    """Print the first `count` events the caller may read, from the stream's start."""
    stub = bus_pb2_grpc.EventBusServiceStub(channel(args))
    stream = stub.Subscribe(bus_pb2.SubscribeRequest(start_sequence=1), timeout=30)
    seen = 0
    for response in stream:
        if response.HasField("skipped"):
            print(json.dumps({"skipped": response.sequence, "reason": response.skipped.reason}))
            continue
        print(json.dumps(json_format.MessageToDict(response)))
        seen += 1
        if seen >= args.count:
            stream.cancel()
            break


def alerts(args):
    """List the alerts the caller may see, newest first."""
    stub = alert_pb2_grpc.AlertServiceStub(channel(args))
    listed = stub.ListAlerts(alert_pb2.ListAlertsRequest(limit=100), timeout=10)
    for record in listed.records:
        print(json.dumps(json_format.MessageToDict(record)))
    print(json.dumps({"alerts": len(listed.records)}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", default="localhost:50051")
    parser.add_argument("--ca", required=True, help="CA that issued the gateway's certificate")
    parser.add_argument("--cert", required=True, help="the agency unit's client certificate")
    parser.add_argument("--key", required=True, help="its private key")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("interview", help="record a deferred passport interview")
    p.add_argument("--id", required=True, help="the office's own reference (idempotency key)")
    p.add_argument("--nik", required=True, help="a synthetic NIK")
    p.add_argument("--region", default="74.02")
    p.set_defaults(run=interview)
    p = commands.add_parser("subscribe", help="read events from the start")
    p.add_argument("--count", type=int, default=1)
    p.set_defaults(run=subscribe)
    p = commands.add_parser("alerts", help="list alerts")
    p.set_defaults(run=alerts)
    args = parser.parse_args()
    try:
        args.run(args)
    except grpc.RpcError as error:
        print(json.dumps(refusal(error)))
        sys.exit(1)


if __name__ == "__main__":
    main()
