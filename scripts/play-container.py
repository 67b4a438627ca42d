#!/usr/bin/env python3
"""Plays the tutorial container's part against the local emulator.

moto never runs containers, so something else must do what the container would: assume the
task role and upload model/sample.txt to s3://BUCKET/KEY with the role's credentials.

usage: play-container.py ROLE_ARN BUCKET KEY FILE     (AWS_ENDPOINT_URL etc. from the environment)
"""
import sys

import boto3


def main() -> int:
    role_arn, bucket, key, path = sys.argv[1:5]
    creds = boto3.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="ecs-task")["Credentials"]
    s3 = boto3.client(
        "s3",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    with open(path, "rb") as body:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    print(f"container: wrote {path} -> s3://{bucket}/{key} as {role_arn}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
