"""`make bench`: every benchmark, one after the other (each starts its own control plane)."""

import asyncio

from bench import hippo_requests, runtime_noop, scale

asyncio.run(hippo_requests.main())
asyncio.run(runtime_noop.main(keys=10_000, objects=2_000, workers=2))
asyncio.run(scale.main(quick=False))
