"""Adapting the neural_cpu engine's Kokoro style vector to one enrolled speaker (issue 26).

Django-free, like everything under workers/: the service (voice_tts.services.voice_adaptation)
loads and stores the search state; this package only computes.
"""
