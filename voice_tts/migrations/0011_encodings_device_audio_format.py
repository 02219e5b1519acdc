from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("voice_tts", "0010_clip_sha256_backfill"),
    ]

    operations = [
        migrations.AddField(
            model_name="accesstoken",
            name="audio_format",
            field=models.CharField(default="wav", max_length=8),
        ),
    ]
