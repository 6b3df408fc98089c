"""Claims in the formats payers hold (X12 837P, FHIR R4 Claim) as claim-line events.

The converters are pure (text in, events and refused claims out); `reader` is the one reader
`check` and `produce` share, picking the converter by `--format`.
"""
