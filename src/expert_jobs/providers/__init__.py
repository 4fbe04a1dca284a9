"""Provider adapters: each turns a provider-neutral request into one call of an official SDK.

SDKs are imported only inside their adapter module, lazily, so ``import expert_jobs`` needs none.
"""
