#!/usr/bin/python3
"""Enhanced fan-out through boto3 against a real server: stream consumers (register,
describe, list with paging, deregister, errors), SubscribeToShard from every starting
position, live delivery of records put after subscribing, the end of a closed shard with its
ChildShards, and --limits aws throttling."""
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import boto3
import botocore.config
import botocore.exceptions

BIN = os.path.join(os.environ["TR_BUILD_DIR"], "tributary")
PASSED = 0
FAILED = 0


def check(name, cond):
    global PASSED, FAILED
    if cond:
        PASSED += 1
        print("ok   -", name)
    else:
        FAILED += 1
        print("FAIL -", name)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    def __init__(self, work, extra=()):
        self.port = free_port()
        conf = os.path.join(work, "tr.conf")
        with open(conf, "w") as f:
            f.write("stream_transition_ms = 0\n")
        self.log = open(os.path.join(work, "server.log"), "ab")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listen", "127.0.0.1:%d" % self.port, "--data-dir",
             os.path.join(work, "data"), "--config", conf, *extra],
            stdout=self.log, stderr=self.log)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        self.client = boto3.client(
            "kinesis", endpoint_url="http://127.0.0.1:%d" % self.port, region_name="us-east-1",
            aws_access_key_id="x", aws_secret_access_key="x",
            config=botocore.config.Config(retries={"max_attempts": 1}))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(15)
        self.log.close()


def error_code(fn, **kw):
    try:
        fn(**kw)
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
    return None


def collect(stream, want, timeout=10):
    """Reads events until `want` records came or the stream ends; returns (datas, events)."""
    datas, events = [], []
    deadline = time.time() + timeout
    for ev in stream:
        e = ev["SubscribeToShardEvent"]
        events.append(e)
        datas += [r["Data"] for r in e["Records"]]
        if len(datas) >= want or time.time() > deadline:
            break
    return datas, events


def consumers(k):
    k.create_stream(StreamName="fan", ShardCount=2)
    arn = k.describe_stream_summary(StreamName="fan")["StreamDescriptionSummary"]["StreamARN"]
    names = ["c%02d" % i for i in range(5)]
    made = {n: k.register_stream_consumer(StreamARN=arn, ConsumerName=n)["Consumer"] for n in names}
    c0 = made["c00"]
    check("consumer ARN names the stream and the consumer",
          c0["ConsumerARN"].startswith(arn + "/consumer/c00:"))
    check("consumer ACTIVE", c0["ConsumerStatus"] == "ACTIVE")
    check("duplicate consumer is ResourceInUseException",
          error_code(k.register_stream_consumer, StreamARN=arn, ConsumerName="c00") == "ResourceInUseException")
    d = k.describe_stream_consumer(ConsumerARN=c0["ConsumerARN"])["ConsumerDescription"]
    check("describe by ARN", d["ConsumerName"] == "c00" and d["StreamARN"] == arn)
    d = k.describe_stream_consumer(StreamARN=arn, ConsumerName="c01")["ConsumerDescription"]
    check("describe by stream and name", d["ConsumerARN"] == made["c01"]["ConsumerARN"])
    page = k.list_stream_consumers(StreamARN=arn, MaxResults=2)
    seen = [c["ConsumerName"] for c in page["Consumers"]]
    while "NextToken" in page:
        page = k.list_stream_consumers(StreamARN=arn, NextToken=page["NextToken"], MaxResults=2)
        seen += [c["ConsumerName"] for c in page["Consumers"]]
    check("list pages through every consumer in order", seen == names)
    summary = k.describe_stream_summary(StreamName="fan")["StreamDescriptionSummary"]
    check("ConsumerCount", summary["ConsumerCount"] == 5)
    k.deregister_stream_consumer(ConsumerARN=made["c04"]["ConsumerARN"])
    check("deregistered consumer is gone",
          error_code(k.describe_stream_consumer, ConsumerARN=made["c04"]["ConsumerARN"]) == "ResourceNotFoundException")
    check("unknown stream ARN",
          error_code(k.register_stream_consumer, StreamARN=arn + "x", ConsumerName="z") == "ResourceNotFoundException")
    check("bad consumer name is ValidationException",
          error_code(k.register_stream_consumer, StreamARN=arn, ConsumerName="bad name") == "ValidationException")
    for i in range(4, 20):
        k.register_stream_consumer(StreamARN=arn, ConsumerName="x%02d" % i)
    check("the 21st consumer is LimitExceededException",
          error_code(k.register_stream_consumer, StreamARN=arn, ConsumerName="over") == "LimitExceededException")
    return arn, c0["ConsumerARN"]


def subscribe(k, arn, carn):
    shard = "shardId-000000000000"
    seqs = []
    for i in range(5):
        r = k.put_record(StreamName="fan", Data=b"old%d" % i, PartitionKey="p",
                         ExplicitHashKey="0")
        seqs.append(r["SequenceNumber"])
    r = k.subscribe_to_shard(ConsumerARN=carn, ShardId=shard,
                             StartingPosition={"Type": "TRIM_HORIZON"})
    datas, events = collect(r["EventStream"], 5)
    check("TRIM_HORIZON delivers the stored records in order", datas == [b"old%d" % i for i in range(5)])
    check("ContinuationSequenceNumber is the last delivered", events[-1]["ContinuationSequenceNumber"] == seqs[-1])
    r["EventStream"].close()

    r = k.subscribe_to_shard(ConsumerARN=carn, ShardId=shard,
                             StartingPosition={"Type": "AT_SEQUENCE_NUMBER", "SequenceNumber": seqs[2]})
    datas, _ = collect(r["EventStream"], 3)
    check("AT_SEQUENCE_NUMBER", datas == [b"old2", b"old3", b"old4"])
    r["EventStream"].close()

    r = k.subscribe_to_shard(ConsumerARN=carn, ShardId=shard,
                             StartingPosition={"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": seqs[3]})
    datas, _ = collect(r["EventStream"], 1)
    check("AFTER_SEQUENCE_NUMBER", datas == [b"old4"])
    r["EventStream"].close()

    r = k.subscribe_to_shard(ConsumerARN=carn, ShardId=shard,
                             StartingPosition={"Type": "LATEST"})

    def later():
        time.sleep(0.3)
        for i in range(20):
            k.put_record(StreamName="fan", Data=b"new%d" % i, PartitionKey="p", ExplicitHashKey="0")
    t = threading.Thread(target=later)
    t0 = time.time()
    t.start()
    datas, _ = collect(r["EventStream"], 20)
    t.join()
    check("LATEST delivers only records put after subscribing, live and in order",
          datas == [b"new%d" % i for i in range(20)])
    check("live delivery took well under the 5 s heartbeat", time.time() - t0 < 4)
    r["EventStream"].close()

    r = k.subscribe_to_shard(ConsumerARN=carn, ShardId=shard,
                             StartingPosition={"Type": "AT_TIMESTAMP", "Timestamp": time.time() + 3600})
    k.put_record(StreamName="fan", Data=b"future", PartitionKey="p", ExplicitHashKey="0")
    datas, _ = collect(r["EventStream"], 1)
    check("AT_TIMESTAMP in the future starts at the next record", datas == [b"future"])
    r["EventStream"].close()

    check("unknown shard is ResourceNotFoundException",
          error_code(k.subscribe_to_shard, ConsumerARN=carn, ShardId="shardId-000000000099",
                     StartingPosition={"Type": "LATEST"}) == "ResourceNotFoundException")
    check("unknown consumer is ResourceNotFoundException",
          error_code(k.subscribe_to_shard, ConsumerARN=carn.replace("c00:", "nope:"), ShardId=shard,
                     StartingPosition={"Type": "LATEST"}) == "ResourceNotFoundException")
    check("bad position type is ValidationException",
          error_code(k.subscribe_to_shard, ConsumerARN=carn, ShardId=shard,
                     StartingPosition={"Type": "SIDEWAYS"}) == "ValidationException")

    # The end of a closed shard: the last event carries ChildShards, then the stream ends.
    k.split_shard(StreamName="fan", ShardToSplit=shard, NewStartingHashKey=str(2 ** 126))
    r = k.subscribe_to_shard(ConsumerARN=carn, ShardId=shard,
                             StartingPosition={"Type": "TRIM_HORIZON"})
    datas, events = [], []
    for ev in r["EventStream"]:
        e = ev["SubscribeToShardEvent"]
        events.append(e)
        datas += [x["Data"] for x in e["Records"]]
    children = events[-1].get("ChildShards", [])
    check("a closed shard is delivered to its end", len(datas) == 26)
    check("the last event names both children",
          sorted(c["ShardId"] for c in children) == ["shardId-000000000002", "shardId-000000000003"])
    check("children name their parent", all(c["ParentShards"] == [shard] for c in children))


def limits(work):
    srv = Server(work, ["--limits", "aws"])
    try:
        k = srv.client
        k.create_stream(StreamName="lim", ShardCount=1)
        r = k.put_records(StreamName="lim", Records=[{"Data": b"x" * 3000, "PartitionKey": "a"}
                                                     for _ in range(500)])
        codes = {x.get("ErrorCode") for x in r["Records"] if "ErrorCode" in x}
        check("--limits aws: PutRecords over 1 MiB/s fails per record",
              300 <= 500 - r["FailedRecordCount"] <= 360 and codes == {"ProvisionedThroughputExceededException"})
        it = k.get_shard_iterator(StreamName="lim", ShardId="shardId-000000000000",
                                  ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        got, t0 = [], time.time()
        for _ in range(15):
            got.append(error_code(k.get_records, ShardIterator=it, Limit=1))
        # A burst of 5, then 5 a second: however slow the calls, no more may pass than that.
        elapsed = time.time() - t0
        allowed = 5 + 5 * elapsed + 1
        ok = got.count(None)
        check("--limits aws: GetRecords beyond 5 calls/s per shard are throttled (%d of 15 "
              "passed in %.2f s)" % (ok, elapsed),
              ok <= allowed and set(got) <= {None, "ProvisionedThroughputExceededException"}
              and (ok < 15 or allowed >= 15))
    finally:
        srv.stop()


def main():
    with tempfile.TemporaryDirectory() as work:
        srv = Server(work)
        try:
            arn, carn = consumers(srv.client)
            subscribe(srv.client, arn, carn)
        finally:
            srv.stop()
        limits(os.path.join(work))
    print("test_kinesis_subscribe: %d passed, %d failed" % (PASSED, FAILED))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
