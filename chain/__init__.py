"""The pure core of the AITBC chain: encoding, hashing, blocks, state transition.

Nothing in this package performs I/O, uses asyncio, or reads the clock.
"""
