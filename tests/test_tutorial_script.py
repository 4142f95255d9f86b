"""MLflow's code-based scorer tutorial, run as a script with only the imports changed.

The script below follows the tutorial's code: trace an OpenAI-calling support app, generate
traces with a placeholder scorer, fetch them with search_traces, and re-score them with a new
scorer. It runs in a fresh interpreter, with the OpenAI client pointed by environment
variables at the bundled server on 127.0.0.1.
"""

import json
import os
import subprocess
import sys
import textwrap

from tui_eval.llm_server import LLMServer
from tui_eval.store import Store

TUTORIAL = textwrap.dedent(
    '''
    import json

    import tui_eval as mlflow
    from openai import OpenAI
    from tui_eval.genai.scorers import scorer

    mlflow.set_experiment("support-assistant")
    mlflow.openai.autolog()
    client = OpenAI()


    @mlflow.trace
    def sample_app(messages: list[dict[str, str]]):
        messages_for_llm = [
            {"role": "system", "content": "You are a helpful customer support assistant."},
            *messages,
        ]
        response = client.chat.completions.create(model="gpt-4o-mini", messages=messages_for_llm)
        return response.choices[0].message.content


    sample_app([{"role": "user", "content": "How much does a microwave cost?"}])

    eval_dataset = [
        {"inputs": {"messages": [{"role": "user", "content": "How much does a microwave cost?"}]}},
        {"inputs": {"messages": [{"role": "user", "content": "Can I return the microwave I bought 2 months ago?"}]}},
        {
            "inputs": {
                "messages": [
                    {"role": "user", "content": "I'm having trouble with my account. I can't log in."},
                    {"role": "assistant", "content": "I'm sorry to hear that. Could you tell me the error message?"},
                    {"role": "user", "content": "It says my password is wrong but I'm sure it's correct."},
                ]
            }
        },
    ]


    @scorer
    def placeholder_metric() -> int:
        return 1


    eval_results = mlflow.genai.evaluate(data=eval_dataset, predict_fn=sample_app, scorers=[placeholder_metric])
    generated_traces = mlflow.search_traces(run_id=eval_results.run_id)


    @scorer
    def response_length(outputs: str) -> int:
        return len(outputs)


    assert response_length(outputs="hello") == 5
    rescored = mlflow.genai.evaluate(data=generated_traces, scorers=[response_length])
    print(json.dumps({
        "generated_run": eval_results.run_id,
        "generated_metrics": eval_results.metrics,
        "rescored_run": rescored.run_id,
        "rescored_metrics": rescored.metrics,
        "columns": list(generated_traces.columns),
        "responses": generated_traces["response"].tolist(),
        "rescored_values": rescored.result_df["response_length/value"].tolist(),
    }))
    '''
)


def test_tutorial_runs_unchanged_after_import_swap(tmp_path):
    script = tmp_path / "tutorial.py"
    script.write_text(TUTORIAL, encoding="utf-8")
    store_path = tmp_path / "tutorial.db"
    with LLMServer(port=0) as server:
        env = {key: value for key, value in os.environ.items() if not key.startswith("OPENAI_")}
        env.update(
            OPENAI_BASE_URL=server.base_url,
            OPENAI_API_KEY="sk-tutorial-local",
            TUI_EVAL_STORE=str(store_path),
            TUI_EVAL_PROGRESS="0",
        )
        result = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
        )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])

    assert report["generated_metrics"] == {"placeholder_metric/mean": 1.0}
    assert report["columns"][:3] == ["trace_id", "trace", "client_request_id"]
    assert len(report["responses"]) == 3
    lengths = sorted(len(text) for text in report["responses"])
    assert sorted(report["rescored_values"]) == lengths
    assert report["rescored_metrics"]["response_length/mean"] == sum(lengths) / 3

    with Store(store_path) as store:
        # The direct call and the three rows each stored a trace; the pre-flight call stores none.
        assert store.count_traces() == 4
        assert store.count_traces(run_id=report["generated_run"]) == 3
        assert store.count_traces(run_id=report["rescored_run"]) == 3
    for path in tmp_path.glob("tutorial.db*"):
        assert b"sk-tutorial-local" not in path.read_bytes(), path
