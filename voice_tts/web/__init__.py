"""The caregiver's pages at /voice/: session login, Korean first, served by the same project.

Views here call the same services as the API (voice_tts/services); the API stays token-only.
"""
