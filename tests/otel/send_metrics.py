"""Sends known metrics to Sightline with the OpenTelemetry Python SDK over
OTLP gRPC, then prints what was sent as JSON for the Rust test to compare.

Usage: send_metrics.py HOST:PORT
"""
import json
import sys
import time

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

endpoint = sys.argv[1]
resource = Resource.create(
    {
        "service.name": "spam-scanner",
        "service.namespace": "mail",
        "service.instance.id": "pod-7",
        "deployment.environment": "test",
    }
)
exporter = OTLPMetricExporter(endpoint=endpoint, insecure=True)
reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
view = View(
    instrument_name="scan.duration",
    aggregation=ExplicitBucketHistogramAggregation(boundaries=[0.01, 0.1, 1.0]),
)
provider = MeterProvider(resource=resource, metric_readers=[reader], views=[view])
meter = provider.get_meter("sightline-test")

messages = meter.create_counter("messages.scanned", unit="{message}", description="Messages scanned")
# The counters' start time (start_time_unix_nano) is taken at their first
# measurement: between these two clocks.
started_after = time.time()
messages.add(5, {"verdict": "ham"})
messages.add(2, {"verdict": "spam"})
messages.add(3, {"verdict": "ham"})
started_before = time.time()
# Collected later than the start, at millisecond precision (a point whose
# start equals its own time is a reset point, with no increase).
time.sleep(0.05)

queue = meter.create_up_down_counter("queue.length", unit="{message}")
queue.add(10)
queue.add(-4)

durations = meter.create_histogram("scan.duration", unit="s")
for v in [0.005, 0.05, 0.5, 0.5, 5.0]:
    durations.record(v)

meter.create_observable_gauge("memory.usage", unit="By", callbacks=[lambda options: [Observation(1048576)]])

ok = provider.force_flush(timeout_millis=30_000)
provider.shutdown()
if not ok:
    sys.exit("force_flush failed")

print(
    json.dumps(
        {
            'messages_scanned_total{verdict="ham"}': 8,
            'messages_scanned_total{verdict="spam"}': 2,
            "queue_length": 6,
            'scan_duration_seconds_bucket{le="0.01"}': 1,
            'scan_duration_seconds_bucket{le="0.1"}': 2,
            'scan_duration_seconds_bucket{le="1"}': 4,
            'scan_duration_seconds_bucket{le="+Inf"}': 5,
            "scan_duration_seconds_sum": 6.055,
            "scan_duration_seconds_count": 5,
            "memory_usage_bytes": 1048576,
            'target_info{deployment_environment="test"}': 1,
            "__started_after": started_after,
            "__started_before": started_before,
        }
    )
)
