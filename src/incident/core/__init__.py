"""The core: incidents and their lifecycle (:mod:`.domain`), the hash-chained timeline
(:mod:`.timeline`), the one error tree (:mod:`.errors`), time (:mod:`.clock`), bearer tokens
(:mod:`.auth`), metrics and memory helpers. Imports nothing else of ours."""
