from carepill_voice.cli import main

main()
